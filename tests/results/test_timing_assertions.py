"""Timing assertions: events in order within budgets, absent events, tool calls in order, latency metrics per
turn, and latency percentiles judged over a run."""

from __future__ import annotations

from typing import Any

import pytest

from rtflow.flow.assertion_types import BASE_ASSERTION_TYPES
from rtflow.flow.spec import AssertionSpec
from rtflow.messages import EventMark, ToolCall, TurnMetrics, TurnOutput
from rtflow.results.assertions import AssertionContext, evaluate_assertions, evaluate_one, run_percentile_results
from rtflow.results.records import AssertionResult

# A barge-in turn: the answer starts, the caller cuts it, the server closes the cancelled response.
BARGE_IN = [
    EventMark(type="response.create", source="client", at_ms=5.0),
    EventMark(type="response.created", source="server", at_ms=40.0),
    EventMark(type="response.output_audio.delta", source="server", at_ms=210.0, last_ms=600.0, count=12),
    EventMark(type="response.cancel", source="client", at_ms=612.0),
    EventMark(type="conversation.item.truncate", source="client", at_ms=613.0),
    EventMark(type="response.output_audio.delta", source="server", at_ms=630.0),
    EventMark(type="response.done", source="server", at_ms=640.0, detail="cancelled"),
]

WEATHER = ToolCall(call_id="c1", name="get_weather", arguments='{"city": "Kyoto", "unit": "celsius"}')
HOTEL = ToolCall(call_id="c2", name="book_hotel", arguments='{"city": "Kyoto", "nights": 2}')


def output_of(**fields: Any) -> TurnOutput:
    """A turn output with the barge-in events unless told otherwise."""
    fields.setdefault("events", BARGE_IN)
    return TurnOutput(text="Rome was founded", **fields)


async def judge(type_: str, value: Any, output: TurnOutput | None = None, **spec: Any) -> AssertionResult:
    """The verdict of one assertion on one output."""
    return await evaluate_one(AssertionSpec(type=type_, value=value, **spec), output or output_of(), AssertionContext())


def test_events_and_absent_are_known_types() -> None:
    """Flows may write both (and their `not-` forms): the loader checks types against this list."""
    assert {"events", "absent"} <= BASE_ASSERTION_TYPES


# ------------------------------------------------------------------------------------------------- events


@pytest.mark.anyio
async def test_events_in_order_pass_with_their_times() -> None:
    """Steps match in order, others between; a run of deltas matches at its first; the reason gives the times."""
    result = await judge(
        "events",
        [
            "response.create",
            {"type": "response.output_audio.delta", "within_ms": 300},
            {"type": "response.cancel", "source": "client"},
            {"type": "response.done", "within_ms": 100},
        ],
    )
    assert (result.passed, result.score, result.error) == (True, 1.0, None), result.reason
    assert result.reason == "4 steps in order: 5 ms, 210 ms, 612 ms, 640 ms"


@pytest.mark.anyio
async def test_events_out_of_order_name_the_step_and_where_it_came() -> None:
    """A step that came only before the step it must follow fails, saying when it did come."""
    result = await judge("events", ["response.cancel", "response.created", "response.done"])
    assert not result.passed and result.error is None
    assert (
        result.reason == "step 2 response.created never came after step 1 (at 612 ms); it came at 40 ms, out of order"
    )


@pytest.mark.anyio
async def test_events_budget_missed_names_the_step_and_the_gap() -> None:
    """`within_ms` counts from the previous matched step (from the turn's start for the first)."""
    late = await judge("events", ["response.created", {"type": "response.cancel", "within_ms": 500}])
    assert not late.passed
    assert late.reason == "step 2 response.cancel came 572 ms after step 1 (budget 500 ms)"
    first = await judge("events", [{"type": "response.created", "within_ms": 30}])
    assert first.reason == "step 1 response.created came at 40 ms (budget 30 ms from the start of the turn)"


@pytest.mark.anyio
async def test_events_a_step_that_never_came() -> None:
    """A missing step is named with its number, its type and the time of the step it had to follow."""
    result = await judge("events", ["response.created", "response.cancel", "conversation.item.truncated"])
    assert not result.passed
    assert result.reason == "step 3 conversation.item.truncated never came after step 2 (at 612 ms)"
    first = await judge("events", "error")
    assert first.reason == "step 1 error never came"


@pytest.mark.anyio
async def test_events_source_filters_the_side() -> None:
    """`source` restricts a step to what the server sent or what the client sent."""
    result = await judge("events", [{"type": "response.cancel", "source": "server"}])
    assert not result.passed and result.reason == "step 1 response.cancel (server) never came"


@pytest.mark.anyio
async def test_events_bad_values_and_a_turn_without_events_are_errors() -> None:
    """A malformed step or a turn with no time line cannot be judged: an error, never a pass."""
    bad = await judge("events", [{"type": "response.done", "within": 5}])
    assert bad.error is not None and "events needs event types" in bad.error
    wrong_side = await judge("events", [{"type": "response.done", "source": "both"}])
    assert wrong_side.error is not None and "server or client" in wrong_side.error
    bare = await judge("not-events", ["response.done"], output_of(events=[]))
    assert not bare.passed and bare.error is not None and "recorded no events" in bare.error


# ------------------------------------------------------------------------------------------------- absent


@pytest.mark.anyio
async def test_absent_passes_when_none_came() -> None:
    """Neither a bare type nor a list of types (with sides) occurs."""
    one = await judge("absent", "error")
    assert (one.passed, one.reason) == (True, "error never came")
    several = await judge("absent", ["error", {"type": "response.cancel", "source": "server"}])
    assert (several.passed, several.reason) == (True, "none of error, response.cancel (server) came")


@pytest.mark.anyio
async def test_absent_fails_naming_the_event_and_when_it_came() -> None:
    """A failure names the side and the time of the first occurrence, and how often a run came."""
    cancel = await judge("absent", ["error", "response.cancel"])
    assert not cancel.passed
    assert cancel.reason == "response.cancel (client) came at 612 ms"
    audio = await judge("absent", {"type": "response.output_audio.delta", "source": "server"})
    assert audio.reason == "response.output_audio.delta (server) came at 210 ms, 13 times in all"


@pytest.mark.anyio
async def test_not_absent_inverts() -> None:
    """`not-absent` passes when the event came, and fails when it did not."""
    came = await judge("not-absent", "response.cancel")
    assert (came.passed, came.score) == (True, 1.0)
    assert came.reason == "not: response.cancel (client) came at 612 ms"
    missing = await judge("not-absent", "error")
    assert (missing.passed, missing.score) == (False, 0.0)


# -------------------------------------------------------------------------------------------- tool-called


@pytest.mark.anyio
async def test_tool_called_in_order_passes() -> None:
    """A list means those calls in that order, names or {name, arguments} with arguments as a subset."""
    output = output_of(tool_calls=[WEATHER, HOTEL])
    result = await judge("tool-called", ["get_weather", {"name": "book_hotel", "arguments": {"nights": 2}}], output)
    assert result.passed, result.reason
    assert result.reason == '2 calls in order: get_weather, book_hotel {"nights": 2}'


@pytest.mark.anyio
async def test_tool_called_out_of_order_or_missing_fails_naming_the_entry() -> None:
    """The reason names the first entry not found in order, why, and the calls made."""
    output = output_of(tool_calls=[WEATHER, HOTEL])
    swapped = await judge("tool-called", ["book_hotel", "get_weather"], output)
    assert not swapped.passed
    assert swapped.reason.startswith(
        "entry 2 get_weather was not called after entry 1 book_hotel (call 2); it was call 1, before that"
    )
    assert 'calls: get_weather({"city": "Kyoto", "unit": "celsius"}), book_hotel(' in swapped.reason
    missing = await judge("tool-called", ["get_weather", "send_invoice"], output)
    assert missing.reason.startswith("entry 2 send_invoice was not called after entry 1 get_weather (call 1) (calls:")
    arguments = await judge("tool-called", [{"name": "get_weather", "arguments": {"city": "Osaka"}}], output)
    assert arguments.reason.startswith('entry 1 get_weather {"city": "Osaka"} was not called; get_weather was called')
    assert (await judge("not-tool-called", ["book_hotel", "get_weather"], output)).passed


@pytest.mark.anyio
async def test_tool_called_single_forms_are_unchanged() -> None:
    """A name or {name, arguments} alone still means that call, anywhere in the turn."""
    output = output_of(tool_calls=[WEATHER])
    assert (await judge("tool-called", "get_weather", output)).passed
    assert not (await judge("tool-called", "book_hotel", output)).passed
    empty = await judge("tool-called", [], output)
    assert empty.error is not None


# ------------------------------------------------------------------------------------------------ latency


@pytest.mark.anyio
async def test_latency_metric_with_max_and_min() -> None:
    """`{metric, max_ms}` and `{metric, min_ms}` bound the new turn-taking metrics."""
    output = output_of(metrics=TurnMetrics(ttfa_ms=812.4, tool_silence_ms=[300.0, 1450.0]))
    fast = await judge("latency", {"metric": "ttfa", "max_ms": 900}, output)
    assert (fast.passed, fast.reason) == (True, "ttfa latency 812 ms <= 900 ms")
    slow = await judge("latency", {"metric": "ttfa", "max_ms": 800}, output)
    assert (slow.passed, slow.reason) == (False, "ttfa latency 812 ms > 800 ms")
    too_fast = await judge("latency", {"metric": "ttfa", "min_ms": 850}, output)
    assert (too_fast.passed, too_fast.reason) == (False, "ttfa latency 812 ms < 850 ms (min)")
    both = await judge("latency", {"metric": "ttfa", "min_ms": 100, "max_ms": 900}, output)
    assert (both.passed, both.reason) == (True, "ttfa latency 812 ms within 100..900 ms")
    silence = await judge("latency", {"metric": "tool_silence", "max_ms": 1000}, output)
    assert (silence.passed, silence.reason) == (False, "tool_silence (longest of 2) latency 1450 ms > 1000 ms")


@pytest.mark.anyio
async def test_latency_missing_metric_and_bad_values_are_errors() -> None:
    """A turn that did not measure the metric cannot be judged, and the reason says why it may lack it."""
    output = output_of(metrics=TurnMetrics(total_ms=900.0))
    missing = await judge("latency", {"metric": "ttfa", "max_ms": 900}, output)
    assert not missing.passed
    assert missing.error == "the turn has no ttfa measurement: its answer had no audible audio"
    unknown = await judge("latency", {"metric": "ttfx", "max_ms": 900}, output)
    assert unknown.error is not None and "'ttfx' is unknown" in unknown.error and "yield_done" in unknown.error
    unbounded = await judge("latency", {"metric": "ttfa"}, output)
    assert unbounded.error is not None and "max_ms or min_ms" in unbounded.error
    legacy = await judge("latency", 1000, output)
    assert (legacy.passed, legacy.reason) == (True, "total latency 900 ms <= 1000 ms")
    legacy_metric = await judge("latency", 100, output, config={"metric": "yield"})
    assert legacy_metric.error == "the turn has no yield measurement: the answer was not cut short (no barge-in)"


@pytest.mark.anyio
async def test_a_percentile_latency_is_a_placeholder_per_turn() -> None:
    """With `p` a turn is not judged: it passes with a reason saying the run judges it (`not-` included)."""
    spec = {"metric": "ttfa", "p": 95, "max_ms": 900}
    for type_ in ("latency", "not-latency"):
        result = await judge(type_, spec, output_of(metrics=TurnMetrics()))
        assert (result.passed, result.score, result.error) == (True, 1.0, None)
        assert result.reason == "judged over the run (p95 of ttfa across its turns)"


def _ttfa_turns(values: list[float | None], spec: dict[str, Any], type_: str = "latency") -> list[Any]:
    """Turns `t0`, `t1`, ... whose first assertion is a contains and whose second is the given latency."""
    asserts = [AssertionSpec(type="contains", value="Rome"), AssertionSpec(type=type_, value=spec, weight=2)]
    return [(f"t{index}", asserts, output_of(metrics=TurnMetrics(ttfa_ms=value))) for index, value in enumerate(values)]


def test_run_percentile_passes_and_fails_over_the_turns() -> None:
    """The nearest-rank percentile over the turns carrying the assertion decides every one of them."""
    values: list[float | None] = [500.0, 600.0, 700.0, 800.0, 950.0]
    passing = run_percentile_results(_ttfa_turns(values, {"metric": "ttfa", "p": 80, "max_ms": 900}))
    assert sorted(passing) == ["t0", "t1", "t2", "t3", "t4"]
    position, result = passing["t2"][0]
    assert position == 1
    assert (result.passed, result.score, result.weight) == (True, 1.0, 2.0)
    assert result.reason == "ttfa p80 over 5 turns: 800 ms <= 900 ms"
    failing = run_percentile_results(_ttfa_turns(values, {"metric": "ttfa", "p": 95, "max_ms": 900}))
    _, result = failing["t0"][0]
    assert (result.passed, result.reason) == (False, "ttfa p95 over 5 turns: 950 ms > 900 ms")
    negated = run_percentile_results(_ttfa_turns(values, {"metric": "ttfa", "p": 95, "max_ms": 900}, "not-latency"))
    assert negated["t4"][0][1].passed and negated["t4"][0][1].reason.startswith("not: ttfa p95")


def test_run_percentile_leaves_out_turns_without_the_metric_or_an_output() -> None:
    """Turns that did not measure the metric are left out (and counted); turns without output get nothing."""
    turns = _ttfa_turns([400.0, None, 500.0], {"metric": "ttfa", "p": 50, "max_ms": 450})
    turns.append(("errored", turns[0][1], None))
    results = run_percentile_results(turns)
    assert "errored" not in results
    _, result = results["t1"][0]
    assert result.passed
    assert result.reason == "ttfa p50 over 2 turns: 400 ms <= 450 ms (1 of 3 turns without a ttfa left out)"
    none = run_percentile_results(_ttfa_turns([None, None], {"metric": "ttfa", "p": 95, "max_ms": 900}))
    _, nothing = none["t0"][0]
    assert not nothing.passed and nothing.error is not None and "none of the 2 turns has a ttfa" in nothing.error


def test_run_percentile_groups_by_metric_p_and_bounds() -> None:
    """Different bounds are different groups; per-turn latency assertions are not the run's business."""
    per_turn = AssertionSpec(type="latency", value={"metric": "ttfa", "max_ms": 900})
    strict = AssertionSpec(type="latency", value={"metric": "ttfa", "p": 50, "max_ms": 550})
    lenient = AssertionSpec(type="latency", value={"metric": "ttfa", "p": 50, "max_ms": 650})
    turns = [
        ("a", [per_turn, strict], output_of(metrics=TurnMetrics(ttfa_ms=500.0))),
        ("b", [lenient], output_of(metrics=TurnMetrics(ttfa_ms=600.0))),
        ("c", [strict, lenient], output_of(metrics=TurnMetrics(ttfa_ms=700.0))),
    ]
    results = run_percentile_results(turns)
    assert [position for position, _ in results["a"]] == [1]
    assert results["a"][0][1].reason == "ttfa p50 over 2 turns: 500 ms <= 550 ms"
    assert results["b"][0][1].reason == "ttfa p50 over 2 turns: 600 ms <= 650 ms"
    assert [(position, r.passed) for position, r in results["c"]] == [(0, True), (1, True)]


@pytest.mark.anyio
async def test_evaluate_assertions_judges_the_new_kinds_together() -> None:
    """The new kinds run beside the others in one turn's evaluation, in the order written."""
    asserts = [
        AssertionSpec(type="events", value=["response.cancel", "response.done"]),
        AssertionSpec(type="absent", value="error"),
        AssertionSpec(type="latency", value={"metric": "yield_done", "max_ms": 100}),
    ]
    output = output_of(metrics=TurnMetrics(yield_done_ms=28.0))
    results = await evaluate_assertions(asserts, output, context=AssertionContext())
    assert [result.passed for result in results] == [True, True, True]
    assert results[2].reason == "yield_done latency 28 ms <= 100 ms"
