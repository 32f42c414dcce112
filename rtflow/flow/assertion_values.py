"""The values assertions are written with, read in one place: the flow stage reads each one at load, so that
`rtflow validate` names a malformed `latency` bound, `events` step or `regex` by file, line and key instead of the
run failing every turn with it; the results stage reads them the same way when it judges a turn.

A value that holds a template (`max_ms: "{{ budget }}"`) is only known once its turn renders it, and is read then.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rtflow.messages import EventMark, ToolCall

__all__ = [
    "ABSENT_KEYS",
    "EVENT_STEP_KEYS",
    "LATENCY_METRICS",
    "AssertionValueError",
    "EventStep",
    "LatencyBound",
    "ToolEntry",
    "Unevaluable",
    "as_number",
    "audio_duration_bounds",
    "compile_regex",
    "event_steps",
    "has_template",
    "latency_bound",
    "read_value",
    "text_value",
    "tool_entries",
]


class Unevaluable(Exception):
    """The assertion could not be judged; the message says why, for the record."""


class AssertionValueError(Unevaluable, ValueError):
    """An assertion's value cannot be read; the message says what is wrong with it and what would be right. At
    load it is the flow's error; when a check meets it (a flow built in code, a template that rendered to
    something else), the assertion is unjudged like any other `Unevaluable`."""


def as_number(value: Any, kind: str, unit: str) -> float:
    """`value` as a number; numeric strings count, since a CSV cell (`latency:500`) gives its value as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AssertionValueError(f"{kind} needs a number ({unit}) as its value, got {value!r}")
    try:
        return float(value)
    except ValueError as exc:
        raise AssertionValueError(f"{kind} needs a number ({unit}) as its value, got {value!r}") from exc


def has_template(value: Any) -> bool:
    """Whether some string in `value` is a Jinja template (rendered per turn, so only readable then)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(has_template(item) for item in value)
    if isinstance(value, dict):
        return any(has_template(item) for item in value.values())
    return False


# ------------------------------------------------------------------------------------------------ latency

LATENCY_METRICS: Mapping[str, tuple[str, str]] = {
    "total": ("total_ms", "the turn did not finish"),
    "first_delta": ("first_delta_ms", "no text or transcript delta came"),
    "first_audio": ("first_audio_ms", "its answer had no audio"),
    "connect": ("connect_ms", "the turn did not open a session (it used one already open)"),
    "ttfb": ("ttfb_ms", "no delta of any kind came"),
    "ttfa": ("ttfa_ms", "its answer had no audible audio"),
    "response_latency": ("response_latency_ms", "no answer came (neither audible audio nor a delta)"),
    "yield": ("yield_ms", "the answer was not cut short (no barge-in)"),
    "yield_done": ("yield_done_ms", "the answer was not cut short, or its cancelled response never finished"),
    "tool_silence": ("tool_silence_ms", "no tool round was followed by the agent's audio"),
    "agent_speaking": ("agent_speaking_ms", "its answer had no audio"),
    "caller_speaking": ("caller_speaking_ms", "the caller sent no audio this turn"),
    "overlap": ("overlap_ms", "the caller did not speak over the agent"),
}
"""Each `latency` metric: the `TurnMetrics` field it reads, and why a turn may lack it (for the reason)."""

_BOUND_KEYS = frozenset({"metric", "max_ms", "min_ms", "p"})


@dataclass(frozen=True)
class LatencyBound:
    """What a `latency` assertion asks: a metric within bounds, for this turn or (with `p`) over the run."""

    metric: str
    max_ms: float | None
    min_ms: float | None
    p: float | None
    """The percentile (0-100] judged over the run's turns; None: judged on each turn."""

    def holds(self, measured: float) -> bool:
        """Whether `measured` is within both bounds."""
        return (self.max_ms is None or measured <= self.max_ms) and (self.min_ms is None or measured >= self.min_ms)

    def compare(self, measured: float) -> str:
        """`812 ms <= 900 ms`, naming the bound that failed (or, on a pass, the bounds that held)."""
        shown = f"{measured:.0f} ms"
        if self.max_ms is not None and measured > self.max_ms:
            return f"{shown} > {self.max_ms:g} ms"
        if self.min_ms is not None and measured < self.min_ms:
            return f"{shown} < {self.min_ms:g} ms (min)"
        if self.max_ms is not None and self.min_ms is not None:
            return f"{shown} within {self.min_ms:g}..{self.max_ms:g} ms"
        if self.max_ms is not None:
            return f"{shown} <= {self.max_ms:g} ms"
        return f"{shown} >= {self.min_ms:g} ms (min)"


def _latency_shape_error(value: Any) -> AssertionValueError:
    return AssertionValueError(
        "latency needs a number of milliseconds (with config.metric) or {metric, max_ms, min_ms, p} "
        f"(max_ms or min_ms at least), got {value!r}"
    )


def _percentile_of(value: Mapping[str, Any]) -> float | None:
    if "p" not in value:
        return None
    p = as_number(value["p"], "latency p", "a percentile")
    if not 0 < p <= 100:
        raise AssertionValueError(f"latency p must be above 0 and at most 100, got {value['p']!r}")
    return p


def latency_bound(value: Any, config: Mapping[str, Any]) -> LatencyBound:
    """A `latency` value read: a number (the maximum, the metric from `config.metric`), or a map
    `{metric, max_ms, min_ms, p}` with at least one bound; the metric defaults to `config.metric`, then `total`."""
    default_metric = str(config.get("metric", "total"))
    if isinstance(value, dict):
        if set(value) - _BOUND_KEYS or not {"max_ms", "min_ms"} & set(value):
            raise _latency_shape_error(value)
        metric = str(value.get("metric", default_metric))
        max_ms = as_number(value["max_ms"], "latency max_ms", "milliseconds") if "max_ms" in value else None
        min_ms = as_number(value["min_ms"], "latency min_ms", "milliseconds") if "min_ms" in value else None
        if max_ms is not None and min_ms is not None and min_ms > max_ms:
            raise AssertionValueError(f"latency min_ms {min_ms:g} is above its max_ms {max_ms:g}")
        bound = LatencyBound(metric, max_ms, min_ms, _percentile_of(value))
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        bound = LatencyBound(default_metric, as_number(value, "latency", "milliseconds"), None, None)
    else:
        raise _latency_shape_error(value)
    if bound.metric not in LATENCY_METRICS:
        raise AssertionValueError(
            f"latency metric {bound.metric!r} is unknown; use one of {', '.join(LATENCY_METRICS)}"
        )
    return bound


# ------------------------------------------------------------------------------------------------ events

EventSource = Literal["server", "client"]
EVENT_STEP_KEYS = frozenset({"type", "source", "within_ms"})
"""What an `events` step may say: its event type, who sent it, and its time budget."""
ABSENT_KEYS = frozenset({"type", "source"})
"""What an `absent` entry may say."""


@dataclass(frozen=True)
class EventStep:
    """One event an assertion looks for: its type, who sent it (None: either side), and its time budget."""

    type: str
    source: EventSource | None = None
    within_ms: float | None = None

    @property
    def label(self) -> str:
        """`response.cancel`, or `response.cancel (client)` when the side matters."""
        return self.type if self.source is None else f"{self.type} ({self.source})"

    def matches(self, mark: EventMark) -> bool:
        return mark.type == self.type and (self.source is None or mark.source == self.source)


def _event_step(value: Any, kind: str, keys: frozenset[str]) -> EventStep:
    """A step written as a bare event type or as a map of `keys` (`type` required)."""
    if isinstance(value, str) and value:
        return EventStep(value)
    if not isinstance(value, dict) or set(value) - keys or not isinstance(value.get("type"), str) or not value["type"]:
        shape = ", ".join(sorted(keys - {"type"}))
        raise AssertionValueError(f"{kind} needs event types or {{type, {shape}}} maps, got {value!r}")
    source = value.get("source")
    if source not in (None, "server", "client"):
        raise AssertionValueError(f"{kind}: source must be server or client, got {source!r}")
    within = as_number(value["within_ms"], f"{kind} within_ms", "milliseconds") if "within_ms" in value else None
    return EventStep(value["type"], source, within)


def event_steps(value: Any, kind: str, keys: frozenset[str]) -> list[EventStep]:
    """The steps of a value that is one step or a list of them."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise AssertionValueError(f"{kind} needs at least one event type")
    return [_event_step(item, kind, keys) for item in items]


# ------------------------------------------------------------------------------------------------ tool calls


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
class ToolEntry:
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


def _tool_entry(value: Any) -> ToolEntry:
    """A tool name or `{name, arguments}`, the two ways one expected call is written."""
    if isinstance(value, str) and value:
        return ToolEntry(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
        return ToolEntry(value["name"], value.get("arguments"))
    raise AssertionValueError(
        f"tool-called needs a tool name, {{name, arguments}} or a list of them (calls in order), got {value!r}"
    )


def tool_entries(value: Any) -> ToolEntry | list[ToolEntry]:
    """One expected call, or (written as a list) calls expected in that order."""
    if isinstance(value, list):
        if not value:
            raise AssertionValueError("tool-called needs at least one tool in its list")
        return [_tool_entry(item) for item in value]
    return _tool_entry(value)


# ------------------------------------------------------------------------------------------------ the rest


def audio_duration_bounds(value: Any) -> tuple[float | None, float | None]:
    """An `audio-duration` value read: `{min, max}` in seconds, either left out."""
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise AssertionValueError(f"audio-duration needs {{min: seconds, max: seconds}} as its value, got {value!r}")
    low = as_number(value["min"], "audio-duration min", "seconds") if "min" in value else None
    high = as_number(value["max"], "audio-duration max", "seconds") if "max" in value else None
    return low, high


def text_value(value: Any, kind: str) -> str:
    """A value that is a string to `kind` (`equals`, `contains`, `regex`...): any scalar is its text."""
    if value is None or isinstance(value, (dict, list)):
        raise AssertionValueError(f"{kind} needs a string value, got {value!r}")
    return str(value)


def compile_regex(value: Any) -> Any:
    """A `regex` value compiled with the `regex` package its check searches with (any scalar is its text)."""
    import regex  # loaded by the first regex assertion, not by every load

    text = text_value(value, "regex")
    try:
        return regex.compile(text)
    except regex.error as exc:
        raise AssertionValueError(f"invalid regular expression {text!r}: {exc}") from exc


_READERS: dict[str, Callable[[Any, Mapping[str, Any]], object]] = {
    "latency": latency_bound,
    "events": lambda value, config: event_steps(value, "events", EVENT_STEP_KEYS),
    "absent": lambda value, config: event_steps(value, "absent", ABSENT_KEYS),
    "tool-called": lambda value, config: tool_entries(value),
    "cost": lambda value, config: as_number(value, "cost", "US dollars"),
    "audio-duration": lambda value, config: audio_duration_bounds(value),
    "regex": lambda value, config: compile_regex(value),
}


def read_value(kind: str, value: Any, config: Mapping[str, Any]) -> None:
    """Read the value of an assertion of `kind` (no `not-` prefix) as its check will: `AssertionValueError` when
    it cannot be. Kinds whose values are free text, and values that hold a template, pass unread."""
    reader = _READERS.get(kind)
    if reader is not None and not has_template(value):
        reader(value, config)
