"""While turns are timed, a full garbage collection walks only what the run made, not the start-up heap."""

from __future__ import annotations

import gc

import anyio

from rtflow.gc_pause import steady_heap
from rtflow.results.records import TurnRecord
from rtflow.runner.scheduler import Scheduler, SchedulerSettings
from rtflow.sim import SimConfig, SimServer

from .memory_provider import Journal, MemoryProvider
from .test_scheduler import make_plan

START_UP_HEAP = 10_000
"""Fewer tracked objects than the modules, the plan and the providers make: a freeze of those has more."""


def freeze_counts_during_a_run() -> list[int]:
    """`gc.get_freeze_count()` as each turn was saved, over a small run on an in-memory provider."""
    seen: list[int] = []

    def sink(record: TurnRecord) -> None:
        seen.append(gc.get_freeze_count())

    plan = make_plan({"a": 2, "b": 2}, ["primary"])
    providers = {"primary": MemoryProvider("primary", Journal())}
    scheduler = Scheduler(plan, providers, run_id="heap", settings=SchedulerSettings(timeout=5.0), sink=sink)
    anyio.run(scheduler.run)
    assert all(record.status == "passed" for record in scheduler.records.values())
    return seen


def test_a_run_freezes_the_start_up_heap_and_hands_it_back() -> None:
    assert gc.get_freeze_count() == 0
    seen = freeze_counts_during_a_run()
    assert seen and all(count > START_UP_HEAP for count in seen)
    assert gc.get_freeze_count() == 0


def test_a_host_that_froze_its_heap_keeps_it_as_it_was() -> None:
    """Neither frozen again (the run's own objects would join the host's) nor unfrozen at the end. The count only
    falls as frozen objects are freed."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        seen = freeze_counts_during_a_run()
        assert seen and all(START_UP_HEAP < count <= frozen for count in seen)
        assert START_UP_HEAP < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_a_simulator_serves_on_a_frozen_start_up_heap() -> None:
    async def serve() -> int:
        async with SimServer(SimConfig()):
            return gc.get_freeze_count()

    assert gc.get_freeze_count() == 0
    assert anyio.run(serve) > START_UP_HEAP
    assert gc.get_freeze_count() == 0


def test_overlapping_holders_share_the_freeze_until_the_last_one_ends() -> None:
    """Two holders that overlap without nesting (two runs at once; a simulator stopped before a run it served
    ends): the one still open keeps the heap frozen (the first to end used to unfreeze everyone's)."""
    assert gc.get_freeze_count() == 0
    first, second = steady_heap(), steady_heap()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    try:
        assert gc.get_freeze_count() > START_UP_HEAP
    finally:
        second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


def test_a_holder_that_opens_later_freezes_what_was_made_since() -> None:
    """`rtflow run --sim`: the simulator's block opens first; the run's, opened after the plan and providers were
    made, freezes those too."""
    assert gc.get_freeze_count() == 0
    with steady_heap():
        before = gc.get_freeze_count()
        made_since = [[index] for index in range(5000)]  # tracked containers
        with steady_heap():
            assert gc.get_freeze_count() >= before + len(made_since)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
