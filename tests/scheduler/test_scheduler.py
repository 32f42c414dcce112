"""The scheduler over real compiled plans, with in-memory providers at the provider boundary."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtflow.errors import ProviderError, RateLimitError
from rtflow.flow.loader import load_text
from rtflow.plan.compiler import compile_flow
from rtflow.plan.graph import Plan
from rtflow.results.records import TurnRecord
from rtflow.runner.scheduler import NodeState, Scheduler, SchedulerSettings

from .memory_provider import Journal, MemoryProvider, auth_error, connection_error

KNOWN = ["openai:chat", "openai:realtime"]


def make_plan(threads: dict[str, int], chain: list[str], *, asserts: list[dict[str, Any]] | None = None) -> Plan:
    """Threads of the given lengths, one provider chain (labels), an inline prompt."""
    provider: dict[str, Any] = {"id": f"openai:chat:{chain[0]}", "label": chain[0]}
    if len(chain) > 1:
        provider["fallback"] = [{"id": f"openai:chat:{label}", "label": label} for label in chain[1:]]
    document = {
        "providers": [provider],
        "prompts": ["{{ question }}"],
        "threads": {
            thread: [{"question": f"{thread} q{i + 1}", "assert": asserts or []} for i in range(turns)]
            for thread, turns in threads.items()
        },
    }
    return compile_flow(load_text(yaml.safe_dump(document)))


def run_plan(
    plan: Plan, providers: dict[str, MemoryProvider], **settings_kwargs: Any
) -> tuple[Scheduler, list[TurnRecord]]:
    saved: list[TurnRecord] = []
    options = {"backoff_base": 0.0, "backoff_max": 0.0, "timeout": 5.0, **settings_kwargs}
    scheduler = Scheduler(plan, providers, run_id="test", settings=SchedulerSettings(**options), sink=saved.append)
    anyio.run(scheduler.run)
    return scheduler, saved


def final(scheduler: Scheduler) -> dict[str, TurnRecord]:
    return scheduler.records


def test_each_reply_sees_exactly_its_own_thread_history() -> None:
    """Two threads of three turns: every reply counts its own thread's user messages and nothing else."""
    journal = Journal()
    plan = make_plan({"japan": 3, "tech": 3}, ["primary"])
    scheduler, _ = run_plan(plan, {"primary": MemoryProvider("primary", journal)})
    records = final(scheduler)
    assert len(records) == 6
    for record in records.values():
        assert record.status == "passed"
        assert record.output is not None
        assert f"(user messages: {record.turn_index + 1})" in record.output.text
        assert f'You said: "{record.thread_id} q{record.turn_index + 1}"' in record.output.text
        users = [m.text for m in record.request_messages if m.role == "user"]
        assert users == [f"{record.thread_id} q{i + 1}" for i in range(record.turn_index + 1)]


def test_threads_run_at_once_and_turns_in_order() -> None:
    """Separate threads overlap in time; the turns of one thread never do."""
    journal = Journal()
    plan = make_plan({"a": 3, "b": 3, "c": 3}, ["primary"])
    run_plan(plan, {"primary": MemoryProvider("primary", journal, delay=0.02)})
    assert journal.max_in_flight == 3
    by_conversation: dict[str, list[tuple[int, float, float]]] = {}
    for _label, conversation, turn, started, ended, _ok in journal.calls:
        by_conversation.setdefault(conversation, []).append((turn, started, ended))
    for calls in by_conversation.values():
        calls.sort()
        for (_, _, ended), (_, started, _) in itertools.pairwise(calls):
            assert started >= ended


def test_retries_then_fallback_answers_and_conversation_goes_on() -> None:
    """A primary failing every attempt of turn 1 is retried, then the fallback answers; turn 2 tries primary first."""
    journal = Journal()

    def fail(label: str, conversation: str, turn: int, attempt: int) -> ProviderError | None:
        return connection_error(label) if label == "primary" and turn == 0 else None

    plan = make_plan({"t": 2}, ["primary", "backup"])
    primary = MemoryProvider("primary", journal, fail=fail)
    scheduler, _ = run_plan(plan, {"primary": primary, "backup": MemoryProvider("backup", journal)}, retries=2)
    first, second = sorted(final(scheduler).values(), key=lambda r: r.turn_index)
    assert first.status == "passed" and first.is_fallback and first.provider == "backup"
    assert first.attempts == 4  # three on the primary (1 + 2 retries), one on the fallback
    assert [c.provider for c in first.calls] == ["primary", "primary", "primary", "backup"]
    assert second.status == "passed" and not second.is_fallback and second.provider == "primary"
    assert second.output is not None and "(user messages: 2)" in second.output.text


def test_fatal_errors_are_not_retried() -> None:
    """A 403 ends the primary after one attempt; the fallback answers."""
    journal = Journal()
    plan = make_plan({"t": 1}, ["primary", "backup"])
    primary = MemoryProvider("primary", journal, fail=lambda label, *_: auth_error(label))
    scheduler, _ = run_plan(plan, {"primary": primary, "backup": MemoryProvider("backup", journal)}, retries=5)
    (record,) = final(scheduler).values()
    assert [c.provider for c in record.calls] == ["primary", "backup"]
    assert record.calls[0].error is not None and record.calls[0].error.kind == "authentication"


def test_whole_chain_failing_records_error_then_skipped_and_others_carry_on() -> None:
    """Turn 2 of one thread fails on every provider: error, turn 3 skipped with the reason, the other thread passes."""
    journal = Journal()

    def fail(label: str, conversation: str, turn: int, attempt: int) -> ProviderError | None:
        return connection_error(label) if conversation.endswith("/bad") and turn == 1 else None

    plan = make_plan({"bad": 3, "good": 3}, ["primary", "backup"])
    providers = {
        "primary": MemoryProvider("primary", journal, fail=fail),
        "backup": MemoryProvider("backup", journal, fail=fail),
    }
    scheduler, _ = run_plan(plan, providers, retries=1)
    statuses = {r.node_id: r.status for r in final(scheduler).values()}
    assert statuses == {
        "primary/bad/1": "passed",
        "primary/bad/2": "error",
        "primary/bad/3": "skipped",
        "primary/good/1": "passed",
        "primary/good/2": "passed",
        "primary/good/3": "passed",
    }
    skipped = final(scheduler)["primary/bad/3"]
    assert skipped.error is not None and "turn 2 failed" in skipped.error.message
    assert journal.open_sessions == 0


def test_retry_after_is_honoured() -> None:
    """A rate limit with retry-after waits at least that long before the next attempt."""
    journal = Journal()

    def fail(label: str, conversation: str, turn: int, attempt: int) -> ProviderError | None:
        return RateLimitError("429", provider=label, retry_after=0.2) if attempt == 1 else None

    plan = make_plan({"t": 1}, ["primary"])
    scheduler, _ = run_plan(plan, {"primary": MemoryProvider("primary", journal, fail=fail)}, retries=1)
    (record,) = final(scheduler).values()
    assert record.status == "passed"
    gap = record.calls[1].started_at - record.calls[0].ended_at
    assert gap >= 0.19


def test_pending_record_is_saved_before_grading() -> None:
    """A turn with assertions is stored as pending the moment it is answered, then with its verdict."""
    journal = Journal()
    plan = make_plan({"t": 2}, ["primary"], asserts=[{"type": "icontains", "value": "you said"}])
    _, saved = run_plan(plan, {"primary": MemoryProvider("primary", journal)})
    first_turn = [r.status for r in saved if r.node_id == "primary/t/1"]
    assert first_turn == ["pending", "passed"]


TERMINAL_NODE_STATES = {NodeState.SUCCEEDED, NodeState.FAILED, NodeState.SKIPPED}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    thread_lengths=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=5),
    chain_length=st.integers(min_value=1, max_value=3),
    failure_rate=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    fatal_rate=st.sampled_from([0.0, 0.5]),
    concurrency=st.integers(min_value=1, max_value=4),
    provider_limit=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    holds_sessions=st.booleans(),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_random_plans_with_random_failures_keep_every_invariant(
    thread_lengths: list[int],
    chain_length: int,
    failure_rate: float,
    fatal_rate: float,
    concurrency: int,
    provider_limit: int | None,
    holds_sessions: bool,
    seed: int,
) -> None:
    """Every node ends in one terminal state, turns never overlap their predecessor, limits are never exceeded."""
    import random

    rng = random.Random(seed)
    labels = [f"p{i}" for i in range(chain_length)]

    def fail(label: str, conversation: str, turn: int, attempt: int) -> ProviderError | None:
        if rng.random() >= failure_rate:
            return None
        return auth_error(label) if rng.random() < fatal_rate else connection_error(label)

    journal = Journal()
    providers = {
        label: MemoryProvider(
            label,
            journal,
            fail=fail,
            delay=0.002,
            max_concurrency=provider_limit,
            holds_sessions=holds_sessions,
            seed=seed,
        )
        for label in labels
    }
    plan = make_plan(
        {f"t{i}": n for i, n in enumerate(thread_lengths)}, labels, asserts=[{"type": "contains", "value": "You"}]
    )
    scheduler, _ = run_plan(plan, providers, retries=1, concurrency=concurrency)

    assert set(scheduler.node_states) == set(plan.graph.nodes)
    assert all(state in TERMINAL_NODE_STATES for state in scheduler.node_states.values())
    records = final(scheduler)
    assert len(records) == plan.counts.turns  # exactly one final record per turn
    assert all(r.status in ("passed", "failed", "error", "skipped") for r in records.values())
    for conversation in plan.conversations.values():
        statuses = [records[node].status for node in conversation.primary_nodes]
        if "error" in statuses:  # after the first error, everything is skipped
            first_error = statuses.index("error")
            assert all(s == "skipped" for s in statuses[first_error + 1 :])
            assert "error" not in statuses[:first_error] and "skipped" not in statuses[:first_error]
        else:
            assert "skipped" not in statuses
    assert journal.max_in_flight <= concurrency
    if provider_limit is not None:
        assert all(peak <= provider_limit for peak in journal.max_in_flight_by_key.values())
    by_conversation: dict[str, list[tuple[int, float, float]]] = {}
    for _label, conversation_id, turn, started, ended, _ok in journal.calls:
        by_conversation.setdefault(conversation_id, []).append((turn, started, ended))
    for calls in by_conversation.values():
        for turn, started, _ in calls:
            earlier_ends = [ended for t, _, ended in calls if t < turn]
            assert all(started >= ended for ended in earlier_ends)
    assert journal.open_sessions == 0


@pytest.mark.parametrize("holds_sessions", [False, True])
def test_provider_limit_caps_calls_or_sessions(holds_sessions: bool) -> None:
    """`max_concurrency` caps requests (chat) or whole conversations' sessions (realtime)."""
    journal = Journal()
    plan = make_plan({f"t{i}": 2 for i in range(6)}, ["primary"])
    provider = MemoryProvider("primary", journal, delay=0.01, max_concurrency=2, holds_sessions=holds_sessions)
    scheduler, _ = run_plan(plan, {"primary": provider}, concurrency=10)
    assert journal.max_in_flight_by_key["primary"] <= 2
    assert all(r.status == "passed" for r in final(scheduler).values())


def test_a_servers_exhausted_budget_holds_the_next_call() -> None:
    """A reply carrying `rate_limit_pause_s` makes the scheduler hold the provider's next call that long."""
    journal = Journal()
    plan = make_plan({"t": 2}, ["primary"])
    provider = MemoryProvider("primary", journal, pause_after_reply=0.25)
    scheduler, _ = run_plan(plan, {"primary": provider})
    first, second = sorted(final(scheduler).values(), key=lambda r: r.turn_index)
    assert second.calls[0].started_at - first.calls[-1].ended_at >= 0.24


@pytest.mark.parametrize("holds_sessions", [False, True])
def test_a_share_of_the_limits_holds_and_can_grow_while_the_run_goes_on(holds_sessions: bool) -> None:
    """A Ray worker's part: as the first of two parts, concurrency 8 and a provider's `max_concurrency` 4 allow 4 and
    2; made the only part mid-run (`reshare`, as when the other worker ran out of work), the provider's 4 are used."""
    journal = Journal()
    plan = make_plan({f"t{n}": 4 for n in range(12)}, ["primary"])
    provider = MemoryProvider("primary", journal, delay=0.02, max_concurrency=4, holds_sessions=holds_sessions)
    settings = SchedulerSettings(concurrency=8, part=(0, 2), backoff_base=0.0, backoff_max=0.0, timeout=5.0)
    scheduler = Scheduler(plan, {"primary": provider}, run_id="test", settings=settings, sink=lambda _: None)
    peaks: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(scheduler.run)
            await anyio.sleep(0.15)
            peaks.append(journal.max_in_flight)
            scheduler.reshare((0, 1))
        peaks.append(journal.max_in_flight)

    anyio.run(main)
    assert peaks == [2, 4]
    assert all(record.status == "passed" for record in scheduler.records.values())
