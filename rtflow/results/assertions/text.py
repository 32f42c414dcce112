"""Assertions on the output's text: equality, substrings, prefixes and regular expressions.

They follow promptfoo's semantics, so suites written for it judge the same way here: `contains-any` and its
kin take a list or a comma-separated string; the `i` forms compare case-insensitively.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rtflow.flow.assertion_values import compile_regex, text_value
from rtflow.messages import TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict

__all__ = ["TEXT_CHECKS"]

TextCheck = Callable[[Any, TurnOutput, AssertionLike, AssertionContext], Verdict]


def _string_list(value: Any, kind: str) -> list[str]:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list):
        items = [str(item) for item in value]
    else:
        raise Unevaluable(f"{kind} needs a list of strings (or a comma-separated string), got {value!r}")
    items = [item for item in items if item]
    if not items:
        raise Unevaluable(f"{kind} needs at least one string")
    return items


def _quote(text: str, limit: int = 80) -> str:
    return json.dumps(text if len(text) <= limit else text[:limit] + "...")


def check_equals(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The output equals the value; a map or list value is compared with the output parsed as JSON."""
    if isinstance(value, (dict, list)):
        try:
            parsed = json.loads(output.text)
        except ValueError:
            return Verdict.of(False, "the output is not JSON, so it cannot equal the expected JSON value")
        return Verdict.of(
            parsed == value,
            "JSON output equals the expected value"
            if parsed == value
            else "JSON output differs from the expected value",
        )
    expected = text_value(value, "equals")
    same = output.text == expected
    return Verdict.of(
        same, f"output equals {_quote(expected)}" if same else f"expected {_quote(expected)}, got {_quote(output.text)}"
    )


def _contains(ignore_case: bool) -> TextCheck:
    def check(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
        needle = text_value(value, spec.type)
        haystack = output.text.lower() if ignore_case else output.text
        found = (needle.lower() if ignore_case else needle) in haystack
        return Verdict.of(found, f"output {'contains' if found else 'does not contain'} {_quote(needle)}")

    return check


def _contains_many(ignore_case: bool, need_all: bool) -> TextCheck:
    def check(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
        needles = _string_list(value, spec.type)
        haystack = output.text.lower() if ignore_case else output.text
        found = [needle for needle in needles if (needle.lower() if ignore_case else needle) in haystack]
        missing = [needle for needle in needles if needle not in found]
        passed = not missing if need_all else bool(found)
        if need_all:
            reason = "output contains all of them" if passed else f"output lacks {', '.join(map(_quote, missing))}"
        else:
            reason = f"output contains {', '.join(map(_quote, found))}" if passed else "output contains none of them"
        return Verdict.of(passed, reason)

    return check


def check_starts_with(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The output begins with the value."""
    prefix = text_value(value, "starts-with")
    passed = output.text.startswith(prefix)
    return Verdict.of(passed, f"output {'starts' if passed else 'does not start'} with {_quote(prefix)}")


REGEX_TIMEOUT_S = 1.0
"""The longest a `regex` assertion may search one output. A pattern that backtracks catastrophically would
otherwise hold the event loop (and the whole run) for hours; past this its assertion errors instead. The search
runs in the event loop (a thread per search would cost more than almost every search does), so this is short."""


def check_regex(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The regular expression matches somewhere in the output, found within `REGEX_TIMEOUT_S`.

    The `regex` package rather than `re`: the same syntax, but its search takes a timeout (and it gets through
    some classic catastrophic patterns, `(a+)+$`, at once). It caches compiled patterns itself.
    """
    pattern = compile_regex(value)
    pattern_text = pattern.pattern
    try:
        match = pattern.search(output.text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError as exc:  # no verdict either way: an error, which even `not-regex` does not count as a pass
        raise Unevaluable(
            f"regular expression {pattern_text!r} did not finish searching the output within {REGEX_TIMEOUT_S:g} s"
            " (too much backtracking on this output)"
        ) from exc
    if match is None:
        return Verdict.of(False, f"no match for /{pattern_text}/")
    return Verdict.of(True, f"/{pattern_text}/ matched {_quote(match.group(0))}")


TEXT_CHECKS: dict[str, TextCheck] = {
    "equals": check_equals,
    "contains": _contains(ignore_case=False),
    "icontains": _contains(ignore_case=True),
    "contains-any": _contains_many(ignore_case=False, need_all=False),
    "contains-all": _contains_many(ignore_case=False, need_all=True),
    "icontains-any": _contains_many(ignore_case=True, need_all=False),
    "icontains-all": _contains_many(ignore_case=True, need_all=True),
    "starts-with": check_starts_with,
    "regex": check_regex,
}
