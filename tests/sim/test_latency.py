"""The latency model: a delay of zero costs nothing, not even a turn of the event loop."""

from __future__ import annotations

import itertools

import anyio
import pytest

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.config import LatencyConfig
from rtflow.sim.latency import Latency

from .conftest import ask, session, until

pytestmark = pytest.mark.anyio


async def yields_to_the_loop(delay: object) -> bool:
    """Whether awaiting `delay()` gives the loop a turn: inside a cancelled scope, any checkpoint raises."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await delay()  # type: ignore[operator]
    return scope.cancelled_caught


@pytest.mark.parametrize("step", ["connect", "first_delta", "per_delta"])
async def test_a_zero_delay_does_not_yield_even_when_other_delays_are_set(step: str) -> None:
    """`per_delta_ms: 0` beside a first-delta delay: a `sleep(0)` between deltas would let every other due answer's
    deltas in between, so under load each answer would end only when all of them had (at 200 sessions that
    stretched the slowest turns by a further ~0.3 s)."""
    others = {"connect_ms": 50.0, "first_delta_ms": 50.0, "per_delta_ms": 50.0}
    others[f"{step}_ms"] = 0.0
    latency = Latency(LatencyConfig(**others))
    assert not await yields_to_the_loop(getattr(latency, step))


@pytest.mark.parametrize("step", ["connect", "first_delta", "per_delta"])
async def test_a_set_delay_or_jitter_sleeps(step: str) -> None:
    assert await yields_to_the_loop(getattr(Latency(LatencyConfig(**{f"{step}_ms": 5.0})), step))
    assert await yields_to_the_loop(getattr(Latency(LatencyConfig(jitter_ms=5.0)), step))


async def test_a_per_delta_delay_still_spaces_the_deltas() -> None:
    """With `per_delta_ms` set, deltas go out that far apart."""
    config = SimConfig(record_events=True, latency={"per_delta_ms": 30})
    async with SimServer(config) as sim, session(sim) as ws:
        await ask(ws, "one two three four")
        with anyio.fail_after(10):
            await until(ws, "response.done")
    times = [e["ts"] for e in sim.events if e["dir"] == "out" and e["type"] == "response.output_text.delta"]
    assert len(times) >= 3
    assert all(later - earlier >= 0.02 for earlier, later in itertools.pairwise(times))  # 30 ms asked
