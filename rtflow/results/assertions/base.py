"""What every assertion kind shares: the context it runs in, its verdict, and rendering of its value.

A check reports a fault it cannot judge past (a grader that failed, a metric the turn never measured) by raising
`Unevaluable`, and a value it cannot read (a flow built in code skips the load's check; a template renders to
something else) by `AssertionValueError`, one kind of `Unevaluable`; `evaluate_assertions` turns either into an
`AssertionResult` with `error` set, so one broken assertion never stops the others or the run.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from rtflow.flow.assertion_types import split_negation
from rtflow.flow.assertion_values import Unevaluable, has_template
from rtflow.messages import Message
from rtflow.results.records import AssertionResult

__all__ = [
    "AssertionContext",
    "AssertionLike",
    "GradeFunction",
    "Unevaluable",
    "Verdict",
    "error_result",
    "render_value",
    "verdict_result",
]

GradeFunction = Callable[[list[Message]], Awaitable[str]]
"""Sends grading messages to the grader provider and returns its reply text."""


class AssertionLike(Protocol):
    """The attributes of `rtflow.flow.spec.AssertionSpec` that assertions read."""

    @property
    def type(self) -> str: ...
    @property
    def value(self) -> Any: ...
    @property
    def weight(self) -> float: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def provider(self) -> str | dict[str, Any] | None: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def transform(self) -> str | None: ...
    @property
    def heard(self) -> bool: ...


@dataclass(frozen=True)
class AssertionContext:
    """What assertions may use beyond the turn's output."""

    vars: Mapping[str, Any] = field(default_factory=dict)
    """The turn's variables; assertion values are Jinja templates rendered with them."""
    base_dir: Path = field(default_factory=Path.cwd)
    """The flow file's folder, against which `file://` references resolve."""
    grade: GradeFunction | None = None
    """Asks the grader provider; None when the flow has no grader (model-graded assertions then error)."""
    graders: Mapping[str, GradeFunction] = field(default_factory=dict)
    """The graders assertions name themselves (their `provider`, or their test's `options.provider`), by
    `rtflow.flow.assertion_types.grader_key`."""
    timeout: float = 60.0
    """Seconds a `python` assertion may run (the run's per-attempt `timeout`); past it the assertion errors."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, before `not-` and weights are applied."""

    passed: bool
    score: float
    reason: str

    @classmethod
    def of(cls, passed: bool, reason: str) -> Verdict:
        """A pass/fail verdict scored 1 or 0."""
        return cls(passed, 1.0 if passed else 0.0, reason)


# Sandboxed so that a flow file cannot reach Python internals through an assertion value.
_jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    """Compiled once per distinct value: every turn of a thread shares its assertions' templates."""
    return _jinja.from_string(source)


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """`value` with every Jinja template string in it rendered from `variables` (lists and maps included)."""
    if isinstance(value, str):
        if not has_template(value):
            return value
        try:
            return _template(value).render(dict(variables))
        except TemplateError as exc:
            raise Unevaluable(f"cannot render assertion value {value!r}: {exc}") from exc
    if isinstance(value, list):
        return [render_value(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, variables) for key, item in value.items()}
    return value


_AS_WRITTEN: Any = object()


def verdict_result(
    spec: AssertionLike, verdict: Verdict, *, value: Any = _AS_WRITTEN, negate: bool = True
) -> AssertionResult:
    """A verdict as the turn's record keeps it: the assertion's `not-` applied (unless `negate` is false), with
    `value` as judged (by default the value as written)."""
    if negate and split_negation(spec.type)[1]:
        verdict = Verdict(not verdict.passed, 1.0 - verdict.score, f"not: {verdict.reason}")
    return AssertionResult(
        type=spec.type,
        value=spec.value if value is _AS_WRITTEN else value,
        passed=verdict.passed,
        score=verdict.score,
        reason=verdict.reason,
        weight=spec.weight,
        metric=spec.metric,
    )


def error_result(spec: AssertionLike, reason: str, *, value: Any = _AS_WRITTEN) -> AssertionResult:
    """An assertion that could not be judged: failed, whatever its `not-`, with the reason as its error."""
    return AssertionResult(
        type=spec.type,
        value=spec.value if value is _AS_WRITTEN else value,
        passed=False,
        score=0.0,
        reason=reason,
        weight=spec.weight,
        metric=spec.metric,
        error=reason,
    )
