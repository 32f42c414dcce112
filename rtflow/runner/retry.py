"""One retry driver for every provider call the scheduler makes: a turn's calls and the grader's alike.

An attempt that fails with a retryable `ProviderError` is tried again after `backoff_delay` (exponential
backoff with full jitter, raised to the server's retry-after), at most `retries` more times; a fatal error, the
last allowed failure, or a run that is stopping ends the loop by raising the error.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from rtflow.errors import ProviderError
from rtflow.log import get_logger
from rtflow.runner.limits import backoff_delay

__all__ = ["RetryPolicy", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry (the flow's `execution` settings)."""

    retries: int
    """Attempts after the first one."""
    backoff_base: float
    backoff_max: float
    max_retry_after: float
    """The longest wait a server may ask for; a longer `retry_after` is cut to this (and logged)."""
    rng: random.Random
    """The jitter's generator, seeded by `--seed` for repeatable runs."""

    def delay(self, failed_attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed."""
        return backoff_delay(
            failed_attempt,
            base=self.backoff_base,
            cap=self.backoff_max,
            retry_after=self.capped(retry_after),
            rng=self.rng,
        )

    def capped(self, asked_s: float | None) -> float | None:
        """A server's asked-for wait, cut to `max_retry_after` (and logged when it was cut)."""
        if asked_s is None or asked_s <= self.max_retry_after:
            return asked_s
        get_logger().warning("retry.wait_capped", asked_s=asked_s, waited_s=self.max_retry_after)
        return self.max_retry_after


async def retrying(
    attempt: Callable[[int], Awaitable[T]], policy: RetryPolicy, *, stop: Callable[[], bool] = lambda: False
) -> T:
    """`await attempt(n)` for n = 1, 2, ... until it returns, or until its `ProviderError` may not be retried."""
    number = 0
    while True:
        number += 1
        try:
            return await attempt(number)
        except ProviderError as exc:
            if not exc.retryable or number > policy.retries or stop():
                raise
            await anyio.sleep(policy.delay(number, exc.retry_after))
