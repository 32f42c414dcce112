"""Rate limits and retry timing, shared by every provider through the scheduler.

A `RateLimiter` holds one token bucket for requests per minute and one for tokens per minute of one provider
key. It also holds a pause: a 429 with `Retry-After`, or a Realtime `rate_limits.updated` event saying nothing
is left, stops every caller of that key until the pause ends. The buckets are written here rather than taken
from a library because they must be anyio-native and tightened from outside by the server's own hints.

`backoff_delay()` is exponential backoff with full jitter (AWS architecture blog's "full jitter"): a uniform
draw in [0, min(cap, base * 2**n)], raised to the server's retry-after when it gave one.
"""

from __future__ import annotations

import random
import time

import anyio

__all__ = ["RateLimiter", "Slots", "TokenBucket", "backoff_delay", "part_of"]


def backoff_delay(
    retry_number: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before retry number `retry_number` (1-based)."""
    ceiling = min(cap, base * (2 ** (retry_number - 1)))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def part_of(total: int, part: tuple[int, int]) -> int:
    """Part `(i, n)` of a concurrency limit: the i-th of n parts as equal as whole calls allow (the parts add up
    to `total`), and at least one call, or nothing could run."""
    index, count = part
    return max(1, total // count + (1 if index < total % count else 0))


class Slots:
    """A counting semaphore whose size may change while its slots are held: a Ray worker's part of the run's
    concurrency grows as other workers run out of work, and shrinks when a lost worker's batch starts elsewhere.

    Growing hands the new slots out at once; shrinking takes free slots out of use at once and keeps back the
    rest as they are released, so no more than the new size is ever newly handed out. anyio's `Semaphore` (used
    underneath, for its fast path) has a fixed size; its `CapacityLimiter` can change size but ties each slot to
    the task that took it, and a session's slot is released by another task than the one that took it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._semaphore = anyio.Semaphore(size, fast_acquire=True)
        self._withheld = 0
        """Slots still to keep back as they are released (the part of a shrink that was busy at the time)."""

    async def acquire(self) -> None:
        while True:
            await self._semaphore.acquire()
            if not self._withheld:
                return
            # Owed to a shrink: a slot that came back without `release` (anyio's own, when a waiter handed one is
            # cancelled) is kept out of use here, and this caller waits for another.
            self._withheld -= 1

    def release(self) -> None:
        if self._withheld:
            self._withheld -= 1
        else:
            self._semaphore.release()

    __aenter__ = acquire  # `async with`: no coroutine frame of its own on the hot path

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def resize(self, size: int) -> None:
        change, self.size = size - self.size, size
        while change > 0 and self._withheld:
            self._withheld -= 1
            change -= 1
        for _ in range(change):
            self._semaphore.release()
        while change < 0:
            try:
                self._semaphore.acquire_nowait()
            except anyio.WouldBlock:
                self._withheld -= change
                return
            change += 1


class TokenBucket:
    """`capacity` tokens, refilled continuously at `capacity` per minute."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.tokens = per_minute
        self.updated = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now

    def _one(self) -> float:
        """What one whole token needs to be there: one, or the whole bucket when it holds less (`rpm: 0.5`: a
        request every two minutes, the balance going below zero after each)."""
        return min(1.0, self.capacity)

    def take_up_to(self, amount: float, now: float) -> float:
        """Takes as many whole tokens as there are, up to `amount` (at least one when one is there); 0 when not
        even one is there."""
        self._refill(now)
        if self.tokens < self._one():
            return 0.0
        taken = float(max(1, min(amount, int(self.tokens))))
        self.tokens -= taken
        return taken

    def time_to_one(self, now: float) -> float:
        """How long until one whole token is there."""
        self._refill(now)
        return max(0.0, (self._one() - self.tokens) / self.rate)

    def wait_time(self, amount: float, now: float) -> float:
        """0 when `amount` can be taken now (and takes it); else how long to wait before trying again."""
        self._refill(now)
        amount = min(amount, self.capacity)  # a request bigger than a minute's budget still goes, alone
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets plus a server-imposed pause, for one provider key."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self._requests = TokenBucket(rpm) if rpm else None
        self._tokens = TokenBucket(tpm) if tpm else None
        self._paused_until = 0.0
        self._lock = anyio.Lock()

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None or self._paused_until > time.monotonic()

    @property
    def counts_tokens(self) -> bool:
        """Whether `acquire` uses its `estimated_tokens` (a `tpm` limit): else the caller need not count them."""
        return self._tokens is not None

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now (a 429's Retry-After, an exhausted rate_limits event)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, estimated_tokens: int = 0) -> None:
        """Wait until one request of about `estimated_tokens` tokens may start."""
        if not self.active:
            return
        async with self._lock:  # FIFO: callers are served in the order they asked
            while True:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self._requests is not None:
                    wait = self._requests.wait_time(1, now)
                if wait <= 0 and self._tokens is not None and estimated_tokens:
                    wait = self._tokens.wait_time(estimated_tokens, now)
                    if wait > 0 and self._requests is not None:
                        self._requests.tokens += 1  # give back the request we took: we are not starting yet
                if wait <= 0:
                    return
                await anyio.sleep(wait)
