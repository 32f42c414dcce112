"""Durations as flow files write them: `60s`, `500ms`, `2m`, `1h`, or a bare number of milliseconds.

A bare number means milliseconds because that is promptfoo's convention (`websocketTimeout: 60000`), and a
suite written for promptfoo must mean the same thing here. Everything inside rtflow works in float seconds.
Every duration of a flow (execution timeouts and backoffs, provider timeouts, tool timeouts) is a `Duration`:
one syntax, one parser, negatives refused wherever they are written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["DURATION_PATTERN", "Duration", "parse_duration"]

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
"""What a duration string may look like; used by the JSON schema too."""

_DURATION_RE = re.compile(DURATION_PATTERN)


def parse_duration(value: object) -> float:
    """Seconds for `value`; raises `ValueError` (with what was expected) when it is not a duration.

    >>> parse_duration("500ms"), parse_duration("2m"), parse_duration(60000)
    (0.5, 120.0, 60.0)
    """
    # bool is an int subclass; `timeout: yes` is a mistake, not one millisecond.
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 60s, 500ms, 2m or a number of milliseconds, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value) / 1000.0
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            number = float(value.strip().rstrip("smh").strip())
            unit = match.group(2) or "ms"
            # Divide for milliseconds so `71ms` and `71` give the very same float.
            return number / 1000.0 if unit == "ms" else number * _UNIT_SECONDS[unit]
    raise ValueError(f"expected a duration such as 60s, 500ms, 2m or a number of milliseconds, got {value!r}")


def _validated_duration(value: Any) -> float:
    # Defaults are not validated, so they stay the float seconds they are written as in the models.
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[float, BeforeValidator(_validated_duration)]
"""A pydantic field type: a flow's duration, held as float seconds."""
