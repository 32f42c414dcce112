"""The latency model: fixed delays plus seeded jitter, slept on the event loop."""

from __future__ import annotations

import random

import anyio

from rtflow.sim.config import LatencyConfig

__all__ = ["Latency"]


class Latency:
    """Sleeps for the configured delays. With every delay at zero it never sleeps, so it costs nothing."""

    def __init__(self, config: LatencyConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)
        self.enabled = any((config.connect_ms, config.first_delta_ms, config.per_delta_ms, config.jitter_ms))

    def _seconds(self, base_ms: float) -> float:
        jitter = self._random.uniform(0.0, self._config.jitter_ms) if self._config.jitter_ms else 0.0
        return (base_ms + jitter) / 1000.0

    async def connect(self) -> None:
        """Before a handshake is accepted or a Chat request answered."""
        if self.enabled:
            await anyio.sleep(self._seconds(self._config.connect_ms))

    async def first_delta(self) -> None:
        """Before the first delta of a response."""
        if self.enabled:
            await anyio.sleep(self._seconds(self._config.first_delta_ms))

    async def per_delta(self) -> None:
        """Between deltas."""
        if self.enabled:
            await anyio.sleep(self._seconds(self._config.per_delta_ms))
