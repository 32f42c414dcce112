"""Assertions over a whole simulated conversation, judged once it has ended (on its last generated turn).

- `turns`: how many agent turns the dialogue took (`{max: 6}`, `{min: 2}`, or a number: the most);
- `stop-reason`: why it ended (`goal`... any of `phrase`, `tool`, `judge`, `max_turns`, `max_duration`; a name
  or `{in: [phrase, tool]}`);
- `goal-met`: the grader decides whether the caller's goal was reached (the goal is the rubric);
- `conversation-rubric`: the grader judges the whole transcript against the rubric given;
- `tool-called`: over every agent turn of the dialogue, with `tool-called`'s own forms (an argument subset, an
  order);
- `each-turn`: a list of assertions, applied to every agent turn of the dialogue; it passes when they pass on all.
Any other type is applied to the transcript as a whole (`not-icontains: sorry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rtflow.flow.assertion_types import split_negation
from rtflow.messages import ToolCall, TurnOutput
from rtflow.results.assertions.base import (
    AssertionContext,
    AssertionLike,
    Unevaluable,
    Verdict,
    error_result,
    verdict_result,
)
from rtflow.results.assertions.evaluate import evaluate_assertions, evaluate_one
from rtflow.results.records import AssertionResult

__all__ = ["ConversationView", "DerivedAssertion", "judge_conversation"]

STOP_REASONS = ("phrase", "tool", "judge", "max_turns", "max_duration", "replay_ended", "caller_error")


@dataclass(frozen=True)
class ConversationView:
    """What the conversation-level assertions read."""

    transcript: str
    goal: str
    turns: int
    stop_reason: str
    outputs: Sequence[TurnOutput]
    tool_calls: Sequence[ToolCall]


@dataclass(frozen=True)
class DerivedAssertion:
    """An assertion made in code: one derived from a conversation-level one (a rubric from `goal-met`), or a
    judge's stop condition."""

    type: str
    value: Any = None
    weight: float = 1.0
    metric: str | None = None
    threshold: float | None = None
    provider: str | dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    transform: str | None = None
    heard: bool = False


def _derived(spec: AssertionLike, **changes: Any) -> DerivedAssertion:
    base = DerivedAssertion(
        type=spec.type,
        value=spec.value,
        weight=spec.weight,
        metric=spec.metric,
        threshold=spec.threshold,
        provider=spec.provider,
        config=dict(spec.config),
        transform=spec.transform,
        heard=spec.heard,
    )
    return replace(base, **changes)


def _turns(value: Any, view: ConversationView) -> Verdict:
    bounds = {"max": value} if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
        raise Unevaluable(f"turns needs a number (the most) or {{min, max}}, got {value!r}")
    low, high = bounds.get("min"), bounds.get("max")
    passed = (low is None or view.turns >= low) and (high is None or view.turns <= high)
    wanted = " and ".join(part for part in (low is not None and f">= {low}", high is not None and f"<= {high}") if part)
    return Verdict.of(passed, f"the dialogue took {view.turns} agent turns ({'' if passed else 'not '}{wanted})")


def _stop_reason(value: Any, view: ConversationView) -> Verdict:
    allowed = value.get("in") if isinstance(value, dict) else [value] if isinstance(value, str) else value
    if not isinstance(allowed, list) or not allowed or any(reason not in STOP_REASONS for reason in allowed):
        raise Unevaluable(f"stop-reason needs one of {', '.join(STOP_REASONS)} or {{in: [...]}}, got {value!r}")
    passed = view.stop_reason in allowed
    return Verdict.of(passed, f"the dialogue ended by {view.stop_reason} ({'in' if passed else 'not in'} {allowed})")


async def _each_turn(spec: AssertionLike, view: ConversationView, context: AssertionContext) -> Verdict:
    value = spec.value
    if not isinstance(value, list) or not value:
        raise Unevaluable("each-turn needs a list of assertions")
    checks: list[DerivedAssertion] = []
    for item in value:
        try:
            checks.append(DerivedAssertion(**item) if isinstance(item, dict) else DerivedAssertion(type=""))
        except TypeError as exc:
            raise Unevaluable(f"each-turn: {item!r} is not an assertion ({exc})") from None
        if not checks[-1].type:
            raise Unevaluable("each-turn needs a list of assertions, each a mapping with a `type`")
    for number, output in enumerate(view.outputs, start=1):
        results = await evaluate_assertions(checks, output, context=context)
        failed = next((result for result in results if not result.passed), None)
        if failed is not None:
            return Verdict.of(False, f"agent turn {number}: {failed.type}: {failed.reason}")
    return Verdict.of(True, f"{len(checks)} assertion(s) passed on each of {len(view.outputs)} agent turns")


async def _judge_one(spec: AssertionLike, view: ConversationView, context: AssertionContext) -> AssertionResult:
    kind, negated = split_negation(spec.type)
    whole = TurnOutput(text=view.transcript, tool_calls=list(view.tool_calls))
    try:
        if kind == "turns":
            return verdict_result(spec, _turns(spec.value, view))
        if kind == "stop-reason":
            return verdict_result(spec, _stop_reason(spec.value, view))
        if kind == "each-turn":
            return verdict_result(spec, await _each_turn(spec, view, context))
    except Unevaluable as exc:
        return error_result(spec, str(exc))
    if kind == "goal-met":
        rubric = f"The caller's goal was reached in this conversation: {view.goal}"
        derived = _derived(spec, type=f"{'not-' if negated else ''}llm-rubric", value=rubric)
        return (await evaluate_one(derived, whole, context)).model_copy(update={"type": spec.type})
    if kind == "conversation-rubric":
        derived = _derived(spec, type=f"{'not-' if negated else ''}llm-rubric")
        return (await evaluate_one(derived, whole, context)).model_copy(update={"type": spec.type})
    return await evaluate_one(spec, whole, context)


async def judge_conversation(
    asserts: Sequence[AssertionLike], view: ConversationView, context: AssertionContext
) -> list[AssertionResult]:
    """Every conversation-level assertion's verdict, in the order written."""
    return [await _judge_one(spec, view, context) for spec in asserts]
