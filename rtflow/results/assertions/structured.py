"""Assertions on structure: JSON, JSON-schema validation, and user Python code.

A JSON-schema value is a map written in the flow, or `file://schema.json` (or `.yaml`) beside it. A `python`
value is an expression (or a function body with `return`) with `output` and `context` in scope, or
`file://checks.py:function` called as `function(output, context)`, as promptfoo calls it.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

import yaml

from rtflow.errors import FlowError
from rtflow.messages import TurnOutput
from rtflow.pyref import FILE_PREFIX, is_python_ref, load_callable, resolve_path
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict
from rtflow.user_code import UserCodeError, call_user_code

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["ASYNC_STRUCTURED_CHECKS", "STRUCTURED_CHECKS", "check_context", "verdict_from_user_code"]


@functools.lru_cache(maxsize=64)
def _parse_schema_file(text: str) -> Any:
    """A schema file's document, parsed once per distinct content (the file is read at every use, so edits count)."""
    return yaml.safe_load(text)


@dataclass(frozen=True)
class _Schema:
    """A schema document keyed by its repr, so that equal schemas (one per turn of a thread) share a validator."""

    key: str
    document: dict[str, Any] = field(compare=False)


@functools.lru_cache(maxsize=256)
def _checked_validator(schema: _Schema) -> Validator:
    """Checking a schema against its meta-schema costs more than validating an output: done once per schema."""
    import jsonschema  # loaded by the first schema assertion, not by every run

    validator_class = jsonschema.validators.validator_for(schema.document)
    try:
        validator_class.check_schema(schema.document)
    except jsonschema.SchemaError as exc:
        raise Unevaluable(f"invalid JSON schema: {exc.message}") from exc
    return validator_class(schema.document)


def _load_validator(value: Any, base_dir: Path) -> Validator:
    if isinstance(value, str) and value.startswith(FILE_PREFIX):
        path = resolve_path(value, base_dir)
        try:
            value = _parse_schema_file(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise Unevaluable(f"cannot read JSON schema {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise Unevaluable(f"a JSON schema must be a map (or file://schema.json), got {value!r}")
    return _checked_validator(_Schema(repr(value), value))


def _schema_problem(document: Any, validator: Validator) -> str | None:
    """None when `document` satisfies the validator's schema, else the first problem, with where it is."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


def check_is_json(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The whole output is JSON (and, given a schema as the value, satisfies it)."""
    try:
        document = json.loads(output.text)
    except ValueError as exc:
        return Verdict.of(False, f"output is not JSON: {exc}")
    if value is None:
        return Verdict.of(True, "output is JSON")
    problem = _schema_problem(document, _load_validator(value, context.base_dir))
    return Verdict.of(
        problem is None,
        "output is JSON and matches the schema"
        if problem is None
        else f"output is JSON but does not match the schema: {problem}",
    )


def _embedded_json(text: str) -> list[Any]:
    """Every JSON object or array found inside `text`, left to right."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    while True:
        starts = [index for index in (text.find("{", position), text.find("[", position)) if index >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            document, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        found.append(document)
        position = end


def check_contains_json(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """Some part of the output is a JSON object or array (satisfying the schema, when one is given)."""
    documents = _embedded_json(output.text)
    if not documents:
        return Verdict.of(False, "output contains no JSON object or array")
    if value is None:
        return Verdict.of(True, f"output contains {len(documents)} JSON value(s)")
    validator = _load_validator(value, context.base_dir)
    problems = [_schema_problem(document, validator) for document in documents]
    if any(problem is None for problem in problems):
        return Verdict.of(True, "output contains JSON that matches the schema")
    return Verdict.of(False, f"no JSON in the output matches the schema: {problems[0]}")


def check_json_schema(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The output parses as JSON and validates against the schema given as the value."""
    if value is None:
        raise Unevaluable(f"{spec.type} needs a JSON schema as its value")
    validator = _load_validator(value, context.base_dir)
    try:
        document = json.loads(output.text)
    except ValueError as exc:
        return Verdict.of(False, f"output is not JSON: {exc}")
    problem = _schema_problem(document, validator)
    return Verdict.of(
        problem is None,
        "output matches the schema" if problem is None else f"output does not match the schema: {problem}",
    )


def check_context(output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> dict[str, Any]:
    return {
        "vars": dict(context.vars),
        "config": dict(spec.config),
        "tool_calls": [call.model_dump(mode="json") for call in output.tool_calls],
        "metrics": output.metrics.model_dump(mode="json"),
        "usage": output.usage.model_dump(mode="json"),
        "cost": output.cost,
    }


@functools.lru_cache(maxsize=256)
def _compiled(code: str) -> tuple[CodeType, bool]:
    """(code object, whether it is an expression), compiled once per distinct assertion value."""
    body = textwrap.dedent(code).strip()
    if "\n" not in body and not body.startswith("return "):
        return compile(body, "<python assertion>", "eval"), True
    # A multi-line value is a function body, as in promptfoo: it must `return` its verdict.
    source = "def _assertion(output, context):\n" + textwrap.indent(body, "    ")
    return compile(source, "<python assertion>", "exec"), False


def _run_inline(code: str, output_text: str, python_context: dict[str, Any]) -> Any:
    scope: dict[str, Any] = {"__builtins__": builtins, "json": json, "re": re, "math": math}
    compiled, is_expression = _compiled(code)
    if is_expression:
        return eval(compiled, scope, {"output": output_text, "context": python_context})
    exec(compiled, scope)
    return scope["_assertion"](output_text, python_context)


def verdict_from_user_code(result: Any, threshold: float | None, language: str = "python") -> Verdict:
    """A user check's result as a verdict: a bool, a score (passing above 0, or at `threshold`), or promptfoo's
    `{pass, score, reason}`."""
    if isinstance(result, bool):
        return Verdict.of(result, f"{language} returned {result}")
    if isinstance(result, (int, float)):
        score = float(result)
        passed = score >= threshold if threshold is not None else score > 0
        return Verdict(passed, score, f"{language} returned score {score:g}")
    if isinstance(result, dict) and ("pass" in result or "score" in result):
        score_value = result.get("score")
        given_score = float(score_value) if isinstance(score_value, (int, float)) else None
        if "pass" in result:
            passed = bool(result["pass"])
        elif given_score is not None:
            passed = given_score >= threshold if threshold is not None else given_score > 0
        else:
            raise Unevaluable(f"{language} assertion returned a non-numeric score: {result!r}")
        score = given_score if given_score is not None else (1.0 if passed else 0.0)
        if threshold is not None and score < threshold:
            passed = False
        return Verdict(passed, score, str(result.get("reason") or f"{language} returned {result!r}"))
    raise Unevaluable(f"{language} assertion returned {result!r}; expected a bool, a number or {{pass, score, reason}}")


async def check_python(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """User code judges the output, in a worker thread and within the run's timeout (see `rtflow.user_code`)."""
    if not isinstance(value, str) or not value.strip():
        raise Unevaluable("python needs an expression or file://module.py:function as its value")
    python_context = check_context(output, spec, context)
    if is_python_ref(value):
        try:
            function = load_callable(value, context.base_dir)
        except FlowError as exc:
            raise Unevaluable(str(exc)) from exc
        what = f"python assertion {value.removeprefix(FILE_PREFIX)}"
    else:
        function = functools.partial(_run_inline, value)
        what = "python assertion"
    try:
        # User code may raise anything, exit or hang; each is this assertion's error, never the run's end.
        result = await call_user_code(function, output.text, python_context, deadline_s=context.timeout, what=what)
    except UserCodeError as exc:
        raise Unevaluable(str(exc)) from exc
    return verdict_from_user_code(result, spec.threshold)


STRUCTURED_CHECKS = {
    "is-json": check_is_json,
    "contains-json": check_contains_json,
    "json-schema": check_json_schema,
    "is-valid-json-schema": check_json_schema,
}
ASYNC_STRUCTURED_CHECKS = {"python": check_python}
"""Checks that run user code, and so must be awaited."""
