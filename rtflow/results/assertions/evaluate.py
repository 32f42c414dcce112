"""Judging one turn: every assertion of the turn, then whether the turn passed.

Each kind has a `not-` form that inverts its verdict (and its score). An assertion that could not be judged
fails with `error` set, whatever its prefix: a broken check never counts as a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from rtflow.errors import FlowError
from rtflow.flow.assertion_types import (
    BASE_ASSERTION_TYPES,
    CONVERSATION_TYPES,
    KNOWN_ASSERTION_TYPES,
    MODEL_GRADED_TYPES,
    split_negation,
)
from rtflow.messages import TurnOutput
from rtflow.results.assertions.base import (
    AssertionContext,
    AssertionLike,
    Unevaluable,
    Verdict,
    error_result,
    render_value,
    verdict_result,
)
from rtflow.results.assertions.javascript import check_javascript
from rtflow.results.assertions.measures import MEASURE_CHECKS
from rtflow.results.assertions.rubric import check_llm_rubric
from rtflow.results.assertions.structured import ASYNC_STRUCTURED_CHECKS, STRUCTURED_CHECKS
from rtflow.results.assertions.text import TEXT_CHECKS
from rtflow.results.assertions.timing import TIMING_CHECKS, run_level_reason
from rtflow.results.assertions.transform import TransformError, transformed
from rtflow.results.records import AssertionResult

__all__ = [
    "BASE_ASSERTION_TYPES",
    "EVALUATED_TYPES",
    "KNOWN_ASSERTION_TYPES",
    "MODEL_GRADED_TYPES",
    "check_assertion_type",
    "evaluate_assertions",
    "evaluate_one",
    "turn_passed",
    "weighted_score",
]


def _only_in_a_dialogue(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    raise Unevaluable(
        f"{spec.type} is judged over a simulated conversation: write it in a `simulate:` entry's `assert`"
    )


_CONVERSATION_CHECKS = dict.fromkeys(CONVERSATION_TYPES, _only_in_a_dialogue)
"""Judged by `rtflow.results.assertions.conversation` over a whole dialogue; on a single turn, an error."""

_SYNC_CHECKS = {**TEXT_CHECKS, **STRUCTURED_CHECKS, **MEASURE_CHECKS, **TIMING_CHECKS, **_CONVERSATION_CHECKS}
_ASYNC_CHECKS = {"llm-rubric": check_llm_rubric, "javascript": check_javascript, **ASYNC_STRUCTURED_CHECKS}

EVALUATED_TYPES: frozenset[str] = frozenset(_SYNC_CHECKS) | frozenset(_ASYNC_CHECKS)
"""The kinds this module can judge: exactly `BASE_ASSERTION_TYPES` (a test holds them equal)."""


def _unknown_type_message(assertion_type: str) -> str:
    return (
        f"unknown assertion type {assertion_type!r}; known types: {', '.join(sorted(BASE_ASSERTION_TYPES))} "
        f"(each also as not-<type>)"
    )


def check_assertion_type(assertion_type: str) -> None:
    """Raise `FlowError` naming the type and the known ones when `assertion_type` is not one rtflow knows."""
    if assertion_type not in KNOWN_ASSERTION_TYPES:
        raise FlowError(_unknown_type_message(assertion_type))


async def _judge(spec: AssertionLike, value: Any, output: TurnOutput, context: AssertionContext) -> Verdict:
    kind, _ = split_negation(spec.type)
    sync_check = _SYNC_CHECKS.get(kind)
    if sync_check is not None:
        return sync_check(value, output, spec, context)
    async_check = _ASYNC_CHECKS.get(kind)
    if async_check is not None:
        return await async_check(value, output, spec, context)
    raise Unevaluable(_unknown_type_message(spec.type))


async def _own_transform(transform: str, output: TurnOutput, context: AssertionContext) -> TurnOutput:
    """The output as the assertion's own `transform` leaves it, for that assertion alone."""
    try:
        return await transformed(transform, output, context, what="the assertion's transform")
    except TransformError as exc:
        raise Unevaluable(str(exc)) from exc


async def evaluate_one(spec: AssertionLike, output: TurnOutput, context: AssertionContext) -> AssertionResult:
    """The verdict of one assertion on one output; never raises for a bad assertion or a failed grader."""
    value: Any = spec.value
    try:
        value = render_value(spec.value, context.vars)
        over_run = run_level_reason(spec, value)
        if over_run is not None:  # a placeholder, whatever the `not-`: the run's verdict replaces it
            return verdict_result(spec, Verdict(True, 1.0, over_run), value=value, negate=False)
        if spec.heard:  # judge what the caller heard of an answer that was cut short
            output = output.model_copy(update={"text": output.heard})
        if spec.transform:
            output = await _own_transform(spec.transform, output, context)
        verdict = await _judge(spec, value, output, context)
    except Unevaluable as exc:
        return error_result(spec, str(exc), value=value)
    return verdict_result(spec, verdict, value=value)


async def evaluate_assertions(
    asserts: Sequence[AssertionLike], output: TurnOutput, *, context: AssertionContext
) -> list[AssertionResult]:
    """Every assertion's verdict on `output`, in the order written.

    They run concurrently, so a turn with several model-graded assertions waits for the slowest grader call,
    not for their sum; the grader's own concurrency limit lives in `context.grade`.
    """
    results: list[AssertionResult | None] = [None] * len(asserts)

    async def run(position: int, spec: AssertionLike) -> None:
        results[position] = await evaluate_one(spec, output, context)

    async with anyio.create_task_group() as task_group:
        for position, spec in enumerate(asserts):
            task_group.start_soon(run, position, spec)
    return [result for result in results if result is not None]


def weighted_score(results: Sequence[AssertionResult]) -> float:
    """The weight-averaged score of `results` (1.0 when they weigh nothing)."""
    total_weight = sum(result.weight for result in results)
    if total_weight <= 0:
        return 1.0
    return sum(result.score * result.weight for result in results) / total_weight


def turn_passed(results: Sequence[AssertionResult], threshold: float | None) -> bool:
    """Whether a turn passed: with a test `threshold`, its weighted score reaches it; else every assertion passed."""
    if threshold is None:
        return all(result.passed for result in results)
    return weighted_score(results) >= threshold
