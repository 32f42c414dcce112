"""Assertion kinds: what a turn's output must satisfy, and whether the turn passed.

`evaluate_assertions` judges one turn's output against the assertions of its test; `turn_passed` turns the
verdicts into the turn's status; `run_percentile_results` judges the run-level (`p`) latency assertions
over every turn of a run. `KNOWN_ASSERTION_TYPES` lets the loader reject an unknown type early.
"""

from __future__ import annotations

from rtflow.results.assertions.base import AssertionContext, AssertionLike, GradeFunction
from rtflow.results.assertions.evaluate import (
    BASE_ASSERTION_TYPES,
    KNOWN_ASSERTION_TYPES,
    MODEL_GRADED_TYPES,
    check_assertion_type,
    evaluate_assertions,
    evaluate_one,
    turn_passed,
    weighted_score,
)
from rtflow.results.assertions.rubric import RUBRIC_SYSTEM_PROMPT, rubric_messages
from rtflow.results.assertions.timing import RunTurn, run_percentile_results

__all__ = [
    "BASE_ASSERTION_TYPES",
    "KNOWN_ASSERTION_TYPES",
    "MODEL_GRADED_TYPES",
    "RUBRIC_SYSTEM_PROMPT",
    "AssertionContext",
    "AssertionLike",
    "GradeFunction",
    "RunTurn",
    "check_assertion_type",
    "evaluate_assertions",
    "evaluate_one",
    "rubric_messages",
    "run_percentile_results",
    "turn_passed",
    "weighted_score",
]
