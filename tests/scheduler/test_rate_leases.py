"""Limits shared by a cluster's workers, without Ray: the rate ledger and the limiters that lease from it (the
ledger's `lease` called in-process, as a worker's remote call would), and `Slots`, the resizable semaphore that
holds a worker's part of the run's concurrency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
import pytest

from rtflow.runner.limits import Slots, part_of
from rtflow.runner.rate_leases import Lease, LeasedRateLimiter, RateLedger


@dataclass
class _Worker:
    """What the ledger needs of a worker's handle: `pause_key.remote(key, seconds)` reaching its limiters."""

    limiters: dict[str, LeasedRateLimiter] = field(default_factory=dict)

    @property
    def pause_key(self) -> _Worker:
        return self

    def remote(self, key: str, seconds: float) -> None:
        self.limiters[key].pause_here(seconds)


class _Limiter(LeasedRateLimiter):
    """A worker's limiter whose lease is the ledger's method called in-process; it keeps the pauses it reports."""

    def __init__(self, ledger: RateLedger, *, rpm: float | None = None, tpm: float | None = None) -> None:
        super().__init__("openai-key", rpm, tpm, lease=ledger.lease, report_pause=self._report)
        self.reported: list[tuple[str, float]] = []

    def _report(self, key: str, seconds: float) -> None:
        self.reported.append((key, seconds))


def test_workers_together_never_take_more_than_the_clusters_bucket() -> None:
    """rpm 2400 is a bucket of 2400 refilled at 40 a second. Three workers asking as fast as they can for 1.5 s get
    the bucket plus the refill, no more, and take the bucket in leases of a quarter second's budget (10), not one
    each. (Once it is spent, each refilled request is a lease of its own: the workers ask as it refills.)"""
    ledger = RateLedger()
    limiters = [_Limiter(ledger, rpm=2400) for n in range(3)]
    taken = [0, 0, 0]
    leases_for_the_bucket: list[int] = []

    async def ask(index: int) -> None:
        while True:
            await limiters[index].acquire()
            taken[index] += 1
            if sum(taken) == 2400:
                leases_for_the_bucket.append(ledger.leases)

    async def main() -> float:
        started = time.monotonic()
        with anyio.move_on_after(1.5):
            async with anyio.create_task_group() as group:
                for index in range(3):
                    group.start_soon(ask, index)
        return time.monotonic() - started

    elapsed = anyio.run(main)
    assert 2400 <= sum(taken) <= 2400 + 40 * elapsed + 1
    assert all(count > 0 for count in taken), taken  # each worker got a part
    assert leases_for_the_bucket[0] <= 2400 / 10 + 3  # leases of 10 while the bucket lasts


def test_tokens_are_leased_in_batches_and_a_big_request_waits_for_its_tokens() -> None:
    """tpm 6000 (100 a second, leases of 25): a 40-token request leases 40 at once; the bucket then spent, the next
    big request waits for the refill."""
    ledger = RateLedger()
    limiter = _Limiter(ledger, tpm=6000)

    async def main() -> float:
        await limiter.acquire(40)
        assert ledger.leases == 1
        await limiter.acquire(5960)  # the rest of the minute's bucket
        started = time.monotonic()
        await limiter.acquire(50)
        return time.monotonic() - started

    waited = anyio.run(main)
    assert 0.35 <= waited < 1.5  # 50 tokens at 100 a second, less what refilled meanwhile


def test_a_pause_on_one_worker_holds_the_key_on_every_worker() -> None:
    """A worker that got a Retry-After reports it; the ledger tells the others at once and refuses leases until
    it ends, so a worker holding no tokens waits too, and its lease answer names the pause."""
    ledger = RateLedger()
    first, second = _Limiter(ledger, rpm=6000), _Limiter(ledger, rpm=6000)
    workers = {"w1": _Worker({"openai-key": first}), "w2": _Worker({"openai-key": second})}
    assert second.reported == []

    async def main() -> tuple[float, Lease]:
        await ledger.register(workers)
        first.pause(0.4)
        assert first.reported == [("openai-key", 0.4)]
        await ledger.pause("openai-key", 0.4, origin="w1")  # what the worker's report does on Ray
        answer = await ledger.lease("openai-key", 6000, None, 1, 0)
        started = time.monotonic()
        await second.acquire()
        return time.monotonic() - started, answer

    waited, answer = anyio.run(main)
    assert answer.requests == 0 and 0.3 < answer.paused_s <= 0.4
    assert waited >= 0.35


def test_a_key_without_limits_asks_no_lease_but_still_pauses() -> None:
    ledger = RateLedger()
    limiter = _Limiter(ledger)

    async def main() -> float:
        await limiter.acquire(1000)
        limiter.pause_here(0.2)
        started = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - started

    assert anyio.run(main) >= 0.19
    assert ledger.leases == 0


@pytest.mark.parametrize("grow_to", [3, 5])
def test_slots_grow_at_once(grow_to: int) -> None:
    """Two slots, both held, three waiting: growing to N lets N - 2 of the waiters in at once."""
    slots = Slots(2)
    entered: list[int] = []

    async def take(n: int) -> None:
        await slots.acquire()
        entered.append(n)

    async def main() -> None:
        await slots.acquire()
        await slots.acquire()
        async with anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(take, n)
            await anyio.sleep(0.05)
            assert entered == []
            slots.resize(grow_to)
            await anyio.sleep(0.05)
            assert len(entered) == min(3, grow_to - 2)
            group.cancel_scope.cancel()

    anyio.run(main)


def test_slots_shrink_keeps_back_busy_slots_as_they_come_free() -> None:
    """Four slots, three held: shrinking to one takes the free one out at once and keeps back the next two
    released, so a waiter gets in only when the holders are down to zero."""
    slots = Slots(4)
    entered: list[str] = []

    async def waiter() -> None:
        async with slots:
            entered.append("waiter")

    async def main() -> None:
        for _ in range(3):
            await slots.acquire()
        slots.resize(1)
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.02)
            assert entered == []  # the free slot was taken out of use
            slots.release()
            slots.release()
            await anyio.sleep(0.02)
            assert entered == []  # both were kept back: one holder left, and the size is one
            slots.release()
            await anyio.sleep(0.02)
            assert entered == ["waiter"]

    anyio.run(main)


def test_a_limit_below_one_request_a_minute_still_lets_requests_through() -> None:
    """`rpm: 0.5` is a request every two minutes, not none: the first goes at once, the next is two minutes off."""
    ledger = RateLedger()

    async def main() -> tuple[Lease, Lease]:
        return await ledger.lease("k", 0.5, None, 1, 0), await ledger.lease("k", 0.5, None, 1, 0)

    first, second = anyio.run(main)
    assert first.requests == 1
    assert second.requests == 0 and 119 < second.wait_s <= 120


def test_a_big_request_gathers_its_tokens_while_small_ones_keep_coming() -> None:
    """tpm 6000 (100 a second): one worker needs 200 tokens at once while another keeps taking 25 at a time. Tokens
    are granted as they are there and both ask as often, so the big one gets its 200 in about four seconds (half
    the refill) rather than wait for a bucket the small ones never let fill."""
    ledger = RateLedger()
    big, small = _Limiter(ledger, tpm=6000), _Limiter(ledger, tpm=6000)

    async def main() -> float:
        await small.acquire(6000)  # the bucket is spent
        started = time.monotonic()
        async with anyio.create_task_group() as group:

            async def keep_asking() -> None:
                while True:
                    await small.acquire(25)

            group.start_soon(keep_asking)
            await big.acquire(200)
            group.cancel_scope.cancel()
        return time.monotonic() - started

    waited = anyio.run(main)
    assert waited < 8  # about 4 s; forever if all-or-nothing, about 40 s if it asked back only for all it lacked


@pytest.mark.parametrize(
    ("total", "count", "parts"), [(5, 3, [2, 2, 1]), (98, 49, [2] * 49), (7, 4, [2, 2, 2, 1]), (2, 4, [1, 1, 1, 1])]
)
def test_the_parts_of_a_limit_add_up_to_it(total: int, count: int, parts: list[int]) -> None:
    """Whole calls, as equal as they can be, summing to the limit (at least one each, so a limit below the number
    of parts is exceeded: each worker runs one call)."""
    assert [part_of(total, (index, count)) for index in range(count)] == parts


def test_a_slot_that_comes_back_outside_release_still_pays_a_shrink() -> None:
    """anyio gives a slot back by itself when the waiter it was handed to is cancelled before it runs. If a shrink
    came in between, that slot must still pay it: the next taker keeps it out of use and waits for another."""
    slots = Slots(2)
    entered: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def waiter() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await slots.acquire()
            entered.append("waiter")

    async def taker() -> None:
        await slots.acquire()
        entered.append("taker")

    async def main() -> None:
        await slots.acquire()  # holder A
        await slots.acquire()  # holder B
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.02)
            slots.release()  # A is done: its slot is handed to the waiter...
            slots.resize(1)  # ...the size drops to one before the waiter runs (one slot owed)...
            scopes[0].cancel()  # ...and the waiter is cancelled: anyio puts the slot back itself
            await anyio.sleep(0.02)
            group.start_soon(taker)
            await anyio.sleep(0.02)
            assert entered == []  # B holds the one slot; the slot anyio put back paid the shrink
            slots.release()  # B is done
            await anyio.sleep(0.02)
            assert entered == ["taker"]

    anyio.run(main)


def test_a_lost_ledger_leaves_each_worker_its_share_of_the_limit() -> None:
    """The ledger's node dies mid-run: the lease call raises. The worker does not fail its calls; it goes on with
    buckets of its share (a third of rpm 1200 is 400 a minute, about 6.7 a second), starting empty, and says so."""
    from rtflow.log import capture_events

    ledger = RateLedger()
    calls = 0

    async def lease_then_lose(*args: object) -> Lease:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("the actor died unexpectedly before finishing this task")
        return await ledger.lease(*args)  # type: ignore[arg-type]

    limiter = LeasedRateLimiter("openai-key", 1200, None, lease=lease_then_lose, report_pause=lambda *a: None,
                                share=lambda: 1 / 3)  # fmt: skip
    taken = 0

    async def main() -> float:
        nonlocal taken
        with anyio.move_on_after(1.5):
            while True:
                await limiter.acquire()
                taken += 1
        return 1.5

    with capture_events() as logs:
        anyio.run(main)
    first_lease = 5  # a quarter second of 1200 a minute
    assert limiter.alone and calls == 2
    assert first_lease <= taken <= first_lease + 400 / 60 * 1.5 + 1  # then the share's refill, from empty
    (lost,) = [entry for entry in logs if entry["event"] == "rate_ledger.lost"]
    assert lost["rpm"] == pytest.approx(400) and "actor died" in lost["reason"]
