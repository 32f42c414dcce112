"""Assertions on what the turn measured and did: latency, cost, output audio duration and tool calls."""

from __future__ import annotations

import json
from typing import Any

from rtflow.messages import ToolCall, TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict

__all__ = ["MEASURE_CHECKS"]

_LATENCY_METRICS = {
    "total": "total_ms",
    "first_delta": "first_delta_ms",
    "first_audio": "first_audio_ms",
    "connect": "connect_ms",
}


def _number(value: Any, kind: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Unevaluable(f"{kind} needs a number ({unit}) as its value, got {value!r}")
    try:
        return float(value)
    except ValueError as exc:
        raise Unevaluable(f"{kind} needs a number ({unit}) as its value, got {value!r}") from exc


def check_latency(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The chosen timing (`config.metric`: total, first_delta, first_audio, connect) is at most `value` ms."""
    limit = _number(value, "latency", "milliseconds")
    metric = str(spec.config.get("metric", "total"))
    field_name = _LATENCY_METRICS.get(metric)
    if field_name is None:
        raise Unevaluable(f"latency metric {metric!r} is unknown; use one of {', '.join(_LATENCY_METRICS)}")
    measured = getattr(output.metrics, field_name)
    if measured is None:
        raise Unevaluable(f"the turn has no {metric} latency measurement")
    passed = measured <= limit
    return Verdict.of(passed, f"{metric} latency {measured:.0f} ms {'<=' if passed else '>'} {limit:g} ms")


def check_cost(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The turn cost at most `value` US dollars."""
    limit = _number(value, "cost", "US dollars")
    if output.cost is None:
        raise Unevaluable("the turn's cost is unknown (no price for its model)")
    passed = output.cost <= limit
    return Verdict.of(passed, f"cost ${output.cost:.6f} {'<=' if passed else '>'} ${limit:g}")


def check_audio_duration(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The turn's output audio lasts between `value.min` and `value.max` seconds (either bound may be left out)."""
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise Unevaluable(f"audio-duration needs {{min: seconds, max: seconds}} as its value, got {value!r}")
    low = _number(value["min"], "audio-duration min", "seconds") if "min" in value else None
    high = _number(value["max"], "audio-duration max", "seconds") if "max" in value else None
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


def check_tool_called(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The model called the named tool (with arguments that include the given ones, when given)."""
    if isinstance(value, str) and value:
        name, expected_arguments = value, None
    elif isinstance(value, dict) and isinstance(value.get("name"), str):
        name, expected_arguments = value["name"], value.get("arguments")
    else:
        raise Unevaluable(f"tool-called needs a tool name or {{name, arguments}}, got {value!r}")
    made = ", ".join(f"{call.name}({call.arguments})" for call in output.tool_calls) or "none"
    named = [call for call in output.tool_calls if call.name == name]
    if not named:
        return Verdict.of(False, f"{name} was not called (calls: {made})")
    if expected_arguments is None:
        return Verdict.of(True, f"{name} was called")
    if any(_is_subset(expected_arguments, _arguments_of(call)) for call in named):
        return Verdict.of(True, f"{name} was called with {json.dumps(expected_arguments)}")
    return Verdict.of(False, f"{name} was called, but never with {json.dumps(expected_arguments)} (calls: {made})")


MEASURE_CHECKS = {
    "latency": check_latency,
    "cost": check_cost,
    "audio-duration": check_audio_duration,
    "tool-called": check_tool_called,
}
