"""Assertions on a turn's time line: the events it must show in order (`events`), the events it must not show
(`absent`), and its timings (`latency`), per turn or as a percentile over the run.

`events` and `absent` read `TurnOutput.events`, the marks a Realtime session keeps of what it sent and received;
`latency` reads `TurnOutput.metrics`. A `latency` value with `p` (`{metric: ttfa, p: 95, max_ms: 900}`) is not
about one turn but about the run: each turn records a placeholder that says so, and `run_percentile_results`,
given every turn of the run, computes the verdicts that replace those placeholders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rtflow.flow.assertion_types import split_negation
from rtflow.flow.assertion_values import (
    ABSENT_KEYS,
    EVENT_STEP_KEYS,
    LATENCY_METRICS,
    AssertionValueError,
    EventStep,
    LatencyBound,
    event_steps,
    latency_bound,
)
from rtflow.messages import EventMark, TurnMetrics, TurnOutput
from rtflow.results.assertions.base import (
    AssertionContext,
    AssertionLike,
    Unevaluable,
    Verdict,
    error_result,
    render_value,
    verdict_result,
)
from rtflow.results.records import AssertionResult
from rtflow.results.statistics import percentile

__all__ = [
    "LATENCY_METRICS",
    "TIMING_CHECKS",
    "LatencyBound",
    "RunTurn",
    "check_absent",
    "check_events",
    "check_latency",
    "is_run_level",
    "latency_bound",
    "measured_latency",
    "run_level_reason",
    "run_percentile_results",
]

# ------------------------------------------------------------------------------------------------ latency


def measured_latency(metric: str, metrics: TurnMetrics) -> float | None:
    """The turn's figure for `metric` (None: not measured); `tool_silence` is the longest of the turn's rounds,
    since a bound on the silences holds when it holds for the longest."""
    measured: Any = getattr(metrics, LATENCY_METRICS[metric][0])
    if isinstance(measured, list):
        return max(measured) if measured else None
    return None if measured is None else float(measured)


def _placeholder(bound: LatencyBound) -> str:
    return f"judged over the run (p{bound.p:g} of {bound.metric} across its turns)"


def is_run_level(spec: AssertionLike) -> bool:
    """Whether the assertion is judged over the run rather than on one turn: a `latency` with a percentile `p`."""
    return split_negation(spec.type)[0] == "latency" and isinstance(spec.value, dict) and "p" in spec.value


def run_level_reason(spec: AssertionLike, value: Any) -> str | None:
    """The placeholder reason of an assertion judged over the run, not on one turn (None: judged per turn).

    `value` is the spec's value as rendered for the turn. `evaluate_one` records the placeholder as a pass
    whatever the `not-` prefix: `run_percentile_results` gives the verdict that replaces it."""
    if split_negation(spec.type)[0] != "latency" or not isinstance(value, dict) or "p" not in value:
        return None
    try:
        bound = latency_bound(value, spec.config)
    except AssertionValueError:
        return None  # the per-turn check reports the malformed value
    return _placeholder(bound)


def check_latency(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The chosen timing is within bounds: `value` ms at most (metric from `config.metric`, default `total`),
    or `{metric, max_ms, min_ms}`. With `p` the assertion is about the run, and this turn only says so."""
    bound = latency_bound(value, spec.config)
    if bound.p is not None:
        return Verdict(True, 1.0, _placeholder(bound))
    measured = measured_latency(bound.metric, output.metrics)
    if measured is None:
        raise Unevaluable(f"the turn has no {bound.metric} measurement: {LATENCY_METRICS[bound.metric][1]}")
    label = bound.metric
    if bound.metric == "tool_silence" and len(output.metrics.tool_silence_ms) > 1:
        label = f"tool_silence (longest of {len(output.metrics.tool_silence_ms)})"
    return Verdict.of(bound.holds(measured), f"{label} latency {bound.compare(measured)}")


# ------------------------------------------------------------------------------------------- events in turn


def _events_of(output: TurnOutput, kind: str) -> list[EventMark]:
    """The turn's event marks; a turn without any cannot be judged (its provider keeps no time line)."""
    if not output.events:
        raise Unevaluable(f"{kind}: the turn recorded no events (only a Realtime session keeps its event time line)")
    return output.events


def _ms(at: float) -> str:
    return f"{at:.0f} ms"


def _never_came(number: int, step: EventStep, marks: list[EventMark], searched_from: int, previous_at: float) -> str:
    """Why step `number` failed to match: it never came, or came only before the step it must follow."""
    if number == 1:
        return f"step 1 {step.label} never came"
    reason = f"step {number} {step.label} never came after step {number - 1} (at {_ms(previous_at)})"
    earlier = next((mark for mark in marks[:searched_from] if step.matches(mark)), None)
    if earlier is not None:
        reason += f"; it came at {_ms(earlier.at_ms)}, out of order"
    return reason


def _over_budget(number: int, step: EventStep, at: float, previous_at: float) -> str | None:
    """The reason step `number` (matched at `at`) missed its budget, or None when it kept it."""
    if step.within_ms is None or at - previous_at <= step.within_ms:
        return None
    if number == 1:
        return f"step 1 {step.label} came at {_ms(at)} (budget {step.within_ms:g} ms from the start of the turn)"
    return (
        f"step {number} {step.label} came {_ms(at - previous_at)} after step {number - 1} "
        f"(budget {step.within_ms:g} ms)"
    )


def check_events(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The steps occur in the turn's events in order (others may come between), each within its budget.

    Each step takes the first matching mark after the previous step's (a run of deltas is one mark, at its
    first); `within_ms` counts from the previous step's mark, or from the start of the turn for the first."""
    steps = event_steps(value, "events", EVENT_STEP_KEYS)
    marks = _events_of(output, "events")
    position, previous_at = 0, 0.0
    times: list[float] = []
    for number, step in enumerate(steps, 1):
        found = next((index for index in range(position, len(marks)) if step.matches(marks[index])), None)
        if found is None:
            return Verdict.of(False, _never_came(number, step, marks, position, previous_at))
        at = marks[found].at_ms
        late = _over_budget(number, step, at, previous_at)
        if late is not None:
            return Verdict.of(False, late)
        times.append(at)
        position, previous_at = found + 1, at
    noun = "step" if len(steps) == 1 else "steps in order"
    return Verdict.of(True, f"{len(steps)} {noun}: {', '.join(_ms(at) for at in times)}")


def _occurrence(step: EventStep, marks: list[EventMark]) -> str | None:
    """`response.cancel (client) came at 612 ms` (and how often in all), or None when it never came."""
    hits = [mark for mark in marks if step.matches(mark)]
    if not hits:
        return None
    first = hits[0]
    total = sum(mark.count for mark in hits)
    again = f", {total} times in all" if total > 1 else ""
    return f"{first.type} ({first.source}) came at {_ms(first.at_ms)}{again}"


def check_absent(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """None of the event types (each optionally from one side) occurs in the turn's events."""
    steps = event_steps(value, "absent", ABSENT_KEYS)
    marks = _events_of(output, "absent")
    came = [reason for reason in (_occurrence(step, marks) for step in steps) if reason is not None]
    if came:
        return Verdict.of(False, "; ".join(came))
    if len(steps) == 1:
        return Verdict.of(True, f"{steps[0].label} never came")
    return Verdict.of(True, f"none of {', '.join(step.label for step in steps)} came")


TIMING_CHECKS = {
    "latency": check_latency,
    "events": check_events,
    "absent": check_absent,
}

# --------------------------------------------------------------------------------------- over the whole run

RunTurn = tuple[str, Sequence[AssertionLike], TurnOutput | None]
"""One turn of a run for `run_percentile_results`: its id, its assertions as written, and its output (None when
it has none: an error or a skipped turn)."""

_GroupKey = tuple[str, str, float, float | None, float | None]


@dataclass(frozen=True)
class _Member:
    turn_id: str
    position: int
    spec: AssertionLike
    output: TurnOutput


def _run_bound(spec: AssertionLike) -> LatencyBound | None:
    """The bound of a run-level `latency` assertion (its value as written, with no vars), or None for others.

    Raises `Unevaluable` for a value that asks for a percentile but cannot be read without the turn's vars."""
    if not is_run_level(spec):
        return None
    return latency_bound(render_value(spec.value, {}), spec.config)


def _group_results(bound: LatencyBound, members: list[_Member]) -> list[AssertionResult]:
    """One verdict for the group, on every member: the percentile over the turns that measured the metric."""
    assert bound.p is not None
    values = [v for v in (measured_latency(bound.metric, m.output.metrics) for m in members) if v is not None]
    value = percentile(values, bound.p / 100)
    if value is None:
        why = LATENCY_METRICS[bound.metric][1]
        reason = f"none of the {len(members)} turns has a {bound.metric} measurement (one lacks it when {why})"
        return [error_result(member.spec, reason) for member in members]
    reason = f"{bound.metric} p{bound.p:g} over {len(values)} turns: {bound.compare(value)}"
    if len(values) < len(members):
        reason += f" ({len(members) - len(values)} of {len(members)} turns without a {bound.metric} left out)"
    verdict = Verdict.of(bound.holds(value), reason)
    return [verdict_result(member.spec, verdict) for member in members]


def run_percentile_results(turns: Sequence[RunTurn]) -> dict[str, list[tuple[int, AssertionResult]]]:
    """The verdicts of the run-level `latency` assertions (those with `p`), for each turn that carries one.

    `turns` is every turn of the run the percentiles are taken over (the caller chooses: the whole run, or one
    provider's turns), each as (turn id, its assertion specs in order, its output or None). The assertions
    with `p` are grouped by (type with its `not-` prefix, metric, p, max_ms, min_ms); for each group the
    nearest-rank percentile of the metric is taken over the group's turns that have an output and measured it
    (those without the measurement are left out, and the reason says how many), and that one verdict, `not-`
    applied, is given to every turn of the group. A group where no turn measured the metric is an error on each.

    Returns, by turn id, (position of the assertion in that turn's specs, its result), in position order: what
    replaces the placeholder `evaluate_one` recorded there. Turns without an output get nothing (they were not
    judged). Values are read as written: a run-level value cannot use a turn's vars.
    """
    groups: dict[_GroupKey, tuple[LatencyBound, list[_Member]]] = {}
    placed: dict[str, list[tuple[int, AssertionResult]]] = defaultdict(list)
    for turn_id, specs, output in turns:
        if output is None:
            continue
        for position, spec in enumerate(specs):
            try:
                bound = _run_bound(spec)
            except Unevaluable as exc:
                placed[turn_id].append((position, error_result(spec, str(exc))))
                continue
            if bound is None or bound.p is None:
                continue
            key = (spec.type, bound.metric, bound.p, bound.max_ms, bound.min_ms)
            groups.setdefault(key, (bound, []))[1].append(_Member(turn_id, position, spec, output))
    for bound, members in groups.values():
        for member, result in zip(members, _group_results(bound, members), strict=True):
            placed[member.turn_id].append((member.position, result))
    return {turn_id: sorted(results, key=lambda item: item[0]) for turn_id, results in placed.items()}
