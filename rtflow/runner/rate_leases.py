"""Rate limits held for a whole Ray cluster: one ledger owns each provider key's buckets, and the workers lease
requests and tokens from it in small batches and spend them locally.

- **Why leases.** Asking the ledger before every call would add a round trip to each; a lease is a quarter of a
  second of the key's budget (`LEASE_SECONDS`), so a busy worker asks a few times a second. What a worker holds
  is already taken out of the cluster's bucket, however the traffic is spread; held requests do not expire, so
  a worker that held a lease while idle can send it on top of a full bucket: the cluster goes over the bucket by
  at most one lease per worker. A worker that ends with some left over only wastes them (one lease at most).
- **Pauses.** A 429's `Retry-After` (or an exhausted `rate_limits.updated`) that one worker receives pauses the key
  on every worker: the worker tells the ledger, the ledger refuses leases until the pause ends and tells every
  other worker at once (`pause_key`), and a lease answer carries what is left of the pause, for a worker that
  asks before the word reaches it.
- **A lost ledger.** When the ledger cannot be reached (its node died), each worker goes on with buckets of its
  share of the limits (`LeasedRateLimiter._go_alone`): the run goes on, and the workers together stay within them.

Nothing here imports Ray: the driver wraps `RateLedger` with `ray.remote` (an async actor: its methods run one
at a time on its event loop, so the buckets need no lock), and each worker hands its `LeasedRateLimiter`s
functions that call the ledger's handle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from rtflow.log import get_logger
from rtflow.runner.limits import RateLimiter, TokenBucket

__all__ = ["LEASE_SECONDS", "Lease", "LeasedRateLimiter", "RateLedger", "request_batch"]

LEASE_SECONDS = 0.25
"""How much of a key's budget one lease hands out, in seconds of its refill (at least one request)."""


def request_batch(rpm: float) -> int:
    """How many requests a worker asks for in one lease of a key with `rpm`."""
    return max(1, math.ceil(rpm * LEASE_SECONDS / 60))


@dataclass(frozen=True)
class Lease:
    """The ledger's answer: what it granted (nothing, or all the tokens asked and at least one request), else how
    long to wait before asking again; and what is left of a pause on the key."""

    requests: float = 0.0
    tokens: float = 0.0
    wait_s: float = 0.0
    paused_s: float = 0.0


class RateLedger:
    """The body of the run's one rate-limit actor: `lease` from each key's buckets, `pause` a key everywhere."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}
        self._paused_until: dict[str, float] = {}
        self._workers: dict[str, Any] = {}
        self.leases = 0
        """Leases asked for so far (granted or not), for the figures of `docs/scale.md`."""

    async def register(self, workers: Mapping[str, Any]) -> None:
        """The workers to tell of a pause, by name: handles whose `pause_key.remote(key, seconds)` reaches them."""
        self._workers = dict(workers)

    async def lease(self, key: str, rpm: float | None, tpm: float | None, requests: float, tokens: float) -> Lease:
        """Up to `requests` requests and up to `tokens` tokens of `key`: what is there now, whole. When not all was
        there, `wait_s` says when to ask again: when a request has refilled, or, for tokens, when the rest has or
        a lease's time has passed, whichever is first. So a big request gathers its tokens bit by bit, asking as
        often as the others, rather than wait for a full bucket that they keep emptying.

        A key's buckets are made on its first lease, from the limits the asking worker read in the flow (every
        worker reads the same flow).
        """
        self.leases += 1
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = self._buckets[key] = (TokenBucket(rpm) if rpm else None, TokenBucket(tpm) if tpm else None)
        request_bucket, token_bucket = buckets
        now = time.monotonic()
        paused = self._paused_until.get(key, 0.0) - now
        if paused > 0:
            return Lease(wait_s=paused, paused_s=paused)
        granted_requests = granted_tokens = wait = 0.0
        if request_bucket is not None and requests:
            granted_requests = request_bucket.take_up_to(requests, now)
            if not granted_requests:
                wait = request_bucket.time_to_one(now)
        if token_bucket is not None and tokens:
            tokens = min(tokens, token_bucket.capacity)
            granted_tokens = min(tokens, token_bucket.take_up_to(tokens, now)) if tokens >= 1 else 0.0
            if granted_tokens < tokens:  # back within a lease's time: others take what refills meanwhile
                wait = max(wait, min((tokens - granted_tokens) / token_bucket.rate, LEASE_SECONDS))
        return Lease(requests=granted_requests, tokens=granted_tokens, wait_s=wait)

    async def forget(self, worker: str) -> None:
        """A worker died: no pause is sent to it any more."""
        self._workers.pop(worker, None)

    async def pause(self, key: str, seconds: float, origin: str) -> None:
        """Hold `key` for `seconds` on every worker: no lease until then, and every worker but `origin` (which
        paused itself) is told now."""
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), time.monotonic() + seconds)
        for name, worker in self._workers.items():
            if name != origin:
                worker.pause_key.remote(key, seconds)

    async def lease_count(self) -> int:
        return self.leases


LeaseFunction = Callable[[str, float | None, float | None, float, float], Awaitable[Lease]]
"""`(key, rpm, tpm, requests, tokens)` → the ledger's `Lease`."""


class LeasedRateLimiter(RateLimiter):
    """A worker's `RateLimiter` for one key whose budget is the cluster's: requests and tokens are spent from
    what was leased, and a lease is asked for when they run out."""

    def __init__(
        self,
        key: str,
        rpm: float | None,
        tpm: float | None,
        *,
        lease: LeaseFunction,
        report_pause: Callable[[str, float], None],
        share: Callable[[], float] = lambda: 1.0,
    ) -> None:
        super().__init__()  # no buckets of its own: the ledger holds them; the pause is this worker's copy
        self.key = key
        self._share = share
        """This worker's part of the key's limits now (1/n of n busy workers): what it keeps if the ledger is lost."""
        self.alone = False
        """Whether the ledger was lost and this worker limits itself (see `_go_alone`)."""
        self.rpm = rpm or None
        self.tpm = tpm or None
        self._lease = lease
        self._report_pause = report_pause
        self._held_requests = 0.0
        self._held_tokens = 0.0
        self._request_batch = request_batch(self.rpm) if self.rpm else 0
        self._token_batch = self.tpm * LEASE_SECONDS / 60 if self.tpm else 0.0

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None or super().active

    @property
    def counts_tokens(self) -> bool:
        return self.tpm is not None

    def pause(self, seconds: float) -> None:
        """This worker got the server's word to hold off: pause here, and have the ledger pause every worker."""
        self.pause_here(seconds)
        self._report_pause(self.key, seconds)

    def pause_here(self, seconds: float) -> None:
        """A pause another worker reported (through the ledger)."""
        super().pause(seconds)

    def _go_alone(self, exc: Exception) -> None:
        """The ledger cannot be reached (its node died, or it was killed): from now on this worker limits itself
        with buckets of its share of the key's limits, so its conversations go on and the workers together stay
        within the limits. The buckets start empty: what the cluster spent lately is not known here."""
        share = self._share()
        self._requests = TokenBucket(self.rpm * share) if self.rpm else None
        self._tokens = TokenBucket(self.tpm * share) if self.tpm else None
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.tokens = 0.0
        self.alone = True
        get_logger().warning(
            "rate_ledger.lost",
            key=self.key,
            reason=f"{type(exc).__name__}: {exc}",
            rpm=self.rpm and self.rpm * share,
            tpm=self.tpm and self.tpm * share,
        )

    async def acquire(self, estimated_tokens: int = 0) -> None:
        if not self.active:
            return
        if self.alone:
            await super().acquire(estimated_tokens)
            return
        if await self._acquire_leased(estimated_tokens):
            return
        await super().acquire(estimated_tokens)  # the ledger was lost while this caller waited

    async def _acquire_leased(self, estimated_tokens: int) -> bool:
        """Spend from what was leased, asking for a lease when it runs out; False when the ledger was lost."""
        tokens_needed = min(float(estimated_tokens), self.tpm) if self.tpm else 0.0
        async with self._lock:  # FIFO, as for a local limiter
            while True:
                wait = self._paused_until - time.monotonic()
                if wait > 0:
                    await anyio.sleep(wait)
                    continue
                short_of_requests = self.rpm is not None and self._held_requests < 1
                short_of_tokens = self._held_tokens < tokens_needed
                if not short_of_requests and not short_of_tokens:
                    if self.rpm is not None:
                        self._held_requests -= 1
                    self._held_tokens -= tokens_needed
                    return True
                if self.alone:
                    return False  # lost while this caller waited for the lock
                try:
                    lease = await self._lease(
                        self.key,
                        self.rpm,
                        self.tpm,
                        self._request_batch if short_of_requests else 0,
                        max(self._token_batch, tokens_needed - self._held_tokens) if short_of_tokens else 0.0,
                    )
                except Exception as exc:  # whatever the actor call raises (RayActorError, ...): not a turn's fault
                    self._go_alone(exc)
                    return False
                if lease.paused_s > 0:
                    self.pause_here(lease.paused_s)
                self._held_requests += lease.requests
                self._held_tokens += lease.tokens
                if lease.wait_s > 0:
                    await anyio.sleep(lease.wait_s)
