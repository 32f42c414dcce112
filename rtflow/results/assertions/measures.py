"""Assertions on what the turn measured and did: cost, output audio duration and tool calls.

Timings (`latency`) and the turn's events live in `timing`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rtflow.messages import ToolCall, TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict, as_number

__all__ = ["MEASURE_CHECKS"]


def check_cost(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The turn cost at most `value` US dollars."""
    limit = as_number(value, "cost", "US dollars")
    if output.cost is None:
        raise Unevaluable("the turn's cost is unknown (no price for its model)")
    passed = output.cost <= limit
    return Verdict.of(passed, f"cost ${output.cost:.6f} {'<=' if passed else '>'} ${limit:g}")


def check_audio_duration(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The turn's output audio lasts between `value.min` and `value.max` seconds (either bound may be left out)."""
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise Unevaluable(f"audio-duration needs {{min: seconds, max: seconds}} as its value, got {value!r}")
    low = as_number(value["min"], "audio-duration min", "seconds") if "min" in value else None
    high = as_number(value["max"], "audio-duration max", "seconds") if "max" in value else None
    if output.audio is not None:
        seconds: float | None = output.audio.duration_s
    else:
        seconds = output.metrics.output_audio_s
    if seconds is None:
        raise Unevaluable("the turn produced no output audio (is the provider's modalities [audio]?)")
    passed = (low is None or seconds >= low) and (high is None or seconds <= high)
    bounds = f"[{'-' if low is None else f'{low:g}'}, {'-' if high is None else f'{high:g}'}] s"
    return Verdict.of(passed, f"output audio {seconds:.2f} s {'within' if passed else 'outside'} {bounds}")


def _is_subset(expected: Any, actual: Any) -> bool:
    """Whether every key in `expected` is in `actual` with a matching value, recursively for maps."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _is_subset(item, actual[key]) for key, item in expected.items()
        )
    return bool(expected == actual)


def _arguments_of(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        return None


@dataclass(frozen=True)
class _ToolEntry:
    """One call a `tool-called` assertion expects: a tool name, and arguments the call must include (if given)."""

    name: str
    arguments: Any = None

    @property
    def label(self) -> str:
        """`get_weather` or `get_weather {"city": "Kyoto"}`, for reasons."""
        return self.name if self.arguments is None else f"{self.name} {json.dumps(self.arguments)}"

    def matches(self, call: ToolCall) -> bool:
        """Whether `call` is this entry: the same name, and every expected argument with its value."""
        if call.name != self.name:
            return False
        return self.arguments is None or _is_subset(self.arguments, _arguments_of(call))


def _tool_entry(value: Any) -> _ToolEntry:
    """A tool name or `{name, arguments}`, the two ways one expected call is written."""
    if isinstance(value, str) and value:
        return _ToolEntry(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
        return _ToolEntry(value["name"], value.get("arguments"))
    raise Unevaluable(
        f"tool-called needs a tool name, {{name, arguments}} or a list of them (calls in order), got {value!r}"
    )


def _calls_made(output: TurnOutput) -> str:
    return ", ".join(f"{call.name}({call.arguments})" for call in output.tool_calls) or "none"


def _check_one_call(entry: _ToolEntry, output: TurnOutput) -> Verdict:
    """The single-entry form: some call is this entry, wherever it came."""
    named = [call for call in output.tool_calls if call.name == entry.name]
    if not named:
        return Verdict.of(False, f"{entry.name} was not called (calls: {_calls_made(output)})")
    if entry.arguments is None:
        return Verdict.of(True, f"{entry.name} was called")
    arguments = json.dumps(entry.arguments)
    if any(entry.matches(call) for call in named):
        return Verdict.of(True, f"{entry.name} was called with {arguments}")
    return Verdict.of(False, f"{entry.name} was called, but never with {arguments} (calls: {_calls_made(output)})")


def _missing_call_hint(entry: _ToolEntry, calls: list[ToolCall], searched_from: int) -> str:
    """Why the entry was not found where it should be: it came too early, or only with other arguments."""
    earlier = [number for number, call in enumerate(calls[:searched_from], 1) if entry.matches(call)]
    if earlier:
        return f"; it was call {earlier[0]}, before that (out of order)"
    if any(call.name == entry.name for call in calls[searched_from:]):
        where = " after it" if searched_from else ""
        return f"; {entry.name} was called{where}, but not with those arguments"
    return ""


def _check_call_sequence(entries: list[_ToolEntry], output: TurnOutput) -> Verdict:
    """The list form: the entries are calls made in that order (other calls may come between them).

    Each entry takes the first matching call after the previous entry's: greedy matching finds an ordered
    subsequence whenever there is one."""
    calls = output.tool_calls
    position = 0
    for number, entry in enumerate(entries, 1):
        found = next((index for index in range(position, len(calls)) if entry.matches(calls[index])), None)
        if found is None:
            after = f" after entry {number - 1} {entries[number - 2].label} (call {position})" if number > 1 else ""
            hint = _missing_call_hint(entry, calls, position)
            return Verdict.of(
                False, f"entry {number} {entry.label} was not called{after}{hint} (calls: {_calls_made(output)})"
            )
        position = found + 1
    names = ", ".join(entry.label for entry in entries)
    return Verdict.of(True, f"{len(entries)} calls in order: {names}")


def check_tool_called(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The model called the named tool (with arguments that include the given ones, when given); a list of
    such entries means those calls in that order."""
    if isinstance(value, list):
        if not value:
            raise Unevaluable("tool-called needs at least one tool in its list")
        return _check_call_sequence([_tool_entry(item) for item in value], output)
    return _check_one_call(_tool_entry(value), output)


MEASURE_CHECKS = {
    "cost": check_cost,
    "audio-duration": check_audio_duration,
    "tool-called": check_tool_called,
}
