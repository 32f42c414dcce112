"""websocket_timeout bounds the silence between server events, not the length of a response."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rtflow.errors import ProviderTimeoutError
from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.sim import SimConfig, SimServer
from rtflow.sim.config import LatencyConfig

pytestmark = pytest.mark.anyio


def _provider(sim: SimServer, timeout: str) -> RealtimeProvider:
    info = ProviderInfo(
        id="openai:realtime:gpt-realtime",
        label="realtime",
        config={"api_base_url": sim.http_base_url, "api_key": "sk-sim", "websocket_timeout": timeout},
        base_dir=Path.cwd(),
    )
    return RealtimeProvider(info)


def _request(question: str) -> TurnRequest:
    return TurnRequest(conversation_id="c", turn_index=0, messages=[Message.of("user", question)])


async def test_a_steady_stream_longer_than_the_timeout_completes() -> None:
    """Deltas 80 ms apart keep a 300 ms timeout from firing although the whole response takes about a second."""
    question = "one two three four five six seven eight"
    async with SimServer(SimConfig(latency=LatencyConfig(per_delta_ms=80))) as sim:
        session = _provider(sim, "300ms").session("c")
        started = time.perf_counter()
        try:
            output = await session.send(_request(question))
        finally:
            await session.aclose()
    assert time.perf_counter() - started > 0.6
    assert output.text.startswith(f'You said: "{question}"')


async def test_silence_after_the_first_events_times_out() -> None:
    """A server that goes quiet after response.created fails the turn within about the timeout."""
    async with SimServer(SimConfig(latency=LatencyConfig(first_delta_ms=3000))) as sim:
        session = _provider(sim, "300ms").session("c")
        started = time.perf_counter()
        try:
            with pytest.raises(ProviderTimeoutError):
                await session.send(_request("are you there?"))
        finally:
            await session.aclose()
    assert 0.25 < time.perf_counter() - started < 1.5
