"""The Realtime GA session settings of late 2026 reach `session.update` as the official types define them: a
custom voice, speed, noise reduction, truncation, a stored prompt, `include`, reasoning and parallel tool calls.
The beta dialect, for third-party servers, does not send them and says so."""

from __future__ import annotations

from typing import Any

from realtime_oracle import validate_client_event

from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.providers.realtime_events import EventBuilder

SETTINGS: dict[str, Any] = {
    "modalities": ["audio"],
    "voice": {"id": "voice_1234"},
    "speed": 1.2,
    "noise_reduction": {"type": "far_field"},
    "truncation": {"type": "retention_ratio", "retention_ratio": 0.5},
    "prompt": {"id": "pmpt_123", "version": "4", "variables": {"city": "Oslo"}},
    "include": ["item.input_audio_transcription.logprobs"],
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": True,
}


def _provider(dialect: str) -> RealtimeProvider:
    config = {**SETTINGS, "dialect": dialect, "api_key": "sk-test"}
    return RealtimeProvider(ProviderInfo(id="openai:realtime:gpt-realtime-2", label="voice", config=config))


def test_ga_session_update_carries_every_current_setting_as_the_types_define_it() -> None:
    provider = _provider("ga")
    event = EventBuilder("ga").session_update(provider.config)
    validate_client_event(event, "ga")  # strict: no key the official types do not know
    session = event["session"]
    assert session["audio"]["output"] == {"voice": {"id": "voice_1234"}, "speed": 1.2}
    assert session["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert session["truncation"] == SETTINGS["truncation"] and session["prompt"] == SETTINGS["prompt"]
    assert session["include"] == SETTINGS["include"] and session["reasoning"] == {"effort": "low"}
    assert provider.warnings() == []


def test_beta_sends_none_of_them_and_warns_about_each() -> None:
    provider = _provider("beta")
    event = EventBuilder("beta").session_update(provider.config)
    validate_client_event(event, "beta")
    assert "voice" not in event["session"]
    warned = " ".join(provider.warnings())
    for key in ("custom voice", "speed", "noise_reduction", "truncation", "prompt", "include", "reasoning"):
        assert key in warned, key
