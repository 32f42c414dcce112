"""Rate limits: token buckets, pauses from the server's own figures, backoff with jitter."""

from __future__ import annotations

import random
import time

import anyio
import pytest

from rtflow.providers.ratelimits import pause_from_headers, pause_from_realtime_limits
from rtflow.runner.limits import RateLimiter, backoff_delay


def test_realtime_limits_with_nothing_left_pause_until_their_reset() -> None:
    """Only exhausted limits count; the longest reset wins."""
    limits = [
        {"name": "requests", "limit": 100, "remaining": 0, "reset_seconds": 1.5},
        {"name": "tokens", "limit": 1000, "remaining": 0, "reset_seconds": 0.5},
    ]
    assert pause_from_realtime_limits(limits) == 1.5
    assert pause_from_realtime_limits([{"name": "requests", "remaining": 3, "reset_seconds": 9}]) is None
    assert pause_from_realtime_limits([]) is None


def test_chat_headers_with_an_exhausted_budget_pause_until_its_reset() -> None:
    """`x-ratelimit-*` durations in OpenAI's forms (`6m0s`, `250ms`) become seconds."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    assert pause_from_headers(headers) == 360.0
    assert pause_from_headers({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "250ms"}) == 0.25
    assert pause_from_headers({"x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "1s"}) is None


def test_requests_per_minute_bucket_spaces_calls_out() -> None:
    """With rpm=120 (2 per second) and a full bucket of 120, the 121st request waits about half a second."""

    async def main() -> float:
        limiter = RateLimiter(rpm=120)
        for _ in range(120):
            await limiter.acquire()
        started = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - started

    waited = anyio.run(main)
    assert 0.4 <= waited < 1.5


def test_a_pause_holds_every_caller() -> None:
    """After `pause(0.2)`, the next acquire waits about that long even with no bucket configured."""

    async def main() -> float:
        limiter = RateLimiter()
        limiter.pause(0.2)
        started = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - started

    assert anyio.run(main) >= 0.19


@pytest.mark.parametrize("retry_number", [1, 2, 3, 6])
def test_backoff_is_full_jitter_under_a_capped_exponential(retry_number: int) -> None:
    """Delays lie in [0, min(cap, base * 2**(n-1))] and are raised to a retry-after."""
    rng = random.Random(7)
    ceiling = min(4.0, 0.5 * 2 ** (retry_number - 1))
    delays = [backoff_delay(retry_number, base=0.5, cap=4.0, retry_after=None, rng=rng) for _ in range(200)]
    assert all(0 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
    assert backoff_delay(retry_number, base=0.5, cap=4.0, retry_after=9.0, rng=rng) == 9.0
