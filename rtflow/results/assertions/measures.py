"""Assertions on what the turn measured and did: cost, output audio duration and tool calls.

Timings (`latency`) and the turn's events live in `timing`."""

from __future__ import annotations

import json
from typing import Any

from rtflow.flow.assertion_values import ToolEntry, as_number, audio_duration_bounds, tool_entries
from rtflow.messages import ToolCall, TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict

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
    low, high = audio_duration_bounds(value)
    if output.audio is not None:
        seconds: float | None = output.audio.duration_s
    else:
        seconds = output.metrics.output_audio_s
    if seconds is None:
        raise Unevaluable("the turn produced no output audio (is the provider's modalities [audio]?)")
    passed = (low is None or seconds >= low) and (high is None or seconds <= high)
    bounds = f"[{'-' if low is None else f'{low:g}'}, {'-' if high is None else f'{high:g}'}] s"
    return Verdict.of(passed, f"output audio {seconds:.2f} s {'within' if passed else 'outside'} {bounds}")


def _calls_made(output: TurnOutput) -> str:
    return ", ".join(f"{call.name}({call.arguments})" for call in output.tool_calls) or "none"


def _check_one_call(entry: ToolEntry, output: TurnOutput) -> Verdict:
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


def _missing_call_hint(entry: ToolEntry, calls: list[ToolCall], searched_from: int) -> str:
    """Why the entry was not found where it should be: it came too early, or only with other arguments."""
    earlier = [number for number, call in enumerate(calls[:searched_from], 1) if entry.matches(call)]
    if earlier:
        return f"; it was call {earlier[0]}, before that (out of order)"
    if any(call.name == entry.name for call in calls[searched_from:]):
        where = " after it" if searched_from else ""
        return f"; {entry.name} was called{where}, but not with those arguments"
    return ""


def _check_call_sequence(entries: list[ToolEntry], output: TurnOutput) -> Verdict:
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
    expected = tool_entries(value)
    if isinstance(expected, list):
        return _check_call_sequence(expected, output)
    return _check_one_call(expected, output)


MEASURE_CHECKS = {
    "cost": check_cost,
    "audio-duration": check_audio_duration,
    "tool-called": check_tool_called,
}
