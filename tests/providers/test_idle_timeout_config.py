"""`idle_timeout_ms` of `openai:realtime` reaches a GA session's server VAD as the official types define it; where
it cannot be honoured (no server VAD, or the beta dialect) it is not sent and the provider says so."""

from __future__ import annotations

from typing import Any

from realtime_oracle import validate_client_event

from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.providers.realtime_events import EventBuilder

SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 300}


def _provider(**config: Any) -> RealtimeProvider:
    info = ProviderInfo(id="openai:realtime:gpt-realtime", label="voice", config={"api_key": "sk-test", **config})
    return RealtimeProvider(info)


def test_idle_timeout_joins_server_vad_in_the_session_update() -> None:
    provider = _provider(turn_detection=SERVER_VAD, idleTimeoutMs=6000)
    event = EventBuilder("ga").session_update(provider.config)
    validate_client_event(event, "ga")
    assert event["session"]["audio"]["input"]["turn_detection"] == {**SERVER_VAD, "idle_timeout_ms": 6000}
    assert provider.warnings() == []


def test_idle_timeout_without_server_vad_or_on_beta_is_not_sent_and_warned() -> None:
    for config in (
        {"idle_timeout_ms": 5000},
        {"idle_timeout_ms": 5000, "turn_detection": SERVER_VAD, "dialect": "beta"},
    ):
        provider = _provider(**config)
        event = EventBuilder(provider.config.dialect).session_update(provider.config)
        assert "idle_timeout_ms" not in str(event)
        assert any("idle_timeout_ms" in warning for warning in provider.warnings()), config
