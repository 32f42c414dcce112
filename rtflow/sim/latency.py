"""The latency model: fixed delays plus seeded jitter, slept on the event loop."""

from __future__ import annotations

import random

import anyio

from rtflow.sim.config import LatencyConfig

__all__ = ["Latency"]


class Latency:
    """Sleeps for the configured delays. A delay of zero costs nothing: it does not even yield to the loop."""

    def __init__(self, config: LatencyConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)

    async def _sleep(self, base_ms: float) -> None:
        # A delay of zero (and no jitter) does not even yield: `sleep(0)` between deltas would let every other
        # response's deltas in between, so under load each answer would end only when all of them had.
        if not (base_ms or self._config.jitter_ms):
            return
        jitter = self._random.uniform(0.0, self._config.jitter_ms) if self._config.jitter_ms else 0.0
        await anyio.sleep((base_ms + jitter) / 1000.0)

    async def connect(self) -> None:
        """Before a handshake is accepted or a Chat request answered."""
        await self._sleep(self._config.connect_ms)

    async def first_delta(self) -> None:
        """Before the first delta of a response."""
        await self._sleep(self._config.first_delta_ms)

    async def per_delta(self) -> None:
        """Between deltas."""
        await self._sleep(self._config.per_delta_ms)
