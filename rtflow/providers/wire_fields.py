"""Reading one field of a server's JSON defensively: a value of the wrong type is noted and read as absent.

Shared by the Realtime and Chat wire readers (`realtime_wire`, `chat_wire`), so a server's faults are described the
same way whichever API it speaks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["Note", "field_count", "field_figure", "field_list", "field_mapping", "field_text", "preview"]

Note = Callable[[str], None]
"""Where a reader notes what it skipped (the turn's protocol warnings)."""

_MAX_COUNT = 2**53


def field_mapping(holder: dict[str, Any], key: str, where: str, note: Note) -> dict[str, Any]:
    value = holder.get(key)
    if value is None or isinstance(value, dict):
        return value or {}
    note(f"{where}.{key} is {preview(value)}, not an object; skipped")
    return {}


def field_list(holder: dict[str, Any], key: str, where: str, note: Note) -> list[Any]:
    value = holder.get(key)
    if value is None or isinstance(value, list):
        return value or []
    note(f"{where}.{key} is {preview(value)}, not a list; skipped")
    return []


def field_text(holder: dict[str, Any], key: str, where: str, note: Note) -> str | None:
    value = holder.get(key)
    if value is None or isinstance(value, str):
        return value
    note(f"{where}.{key} is {preview(value)}, not a string; skipped")
    return None


def field_count(holder: dict[str, Any], key: str, where: str, note: Note) -> int:
    value = holder.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT:
        return value
    note(f"{where}.{key} is {preview(value)}, not a token count; read as 0")
    return 0


def field_figure(holder: dict[str, Any], key: str, where: str, note: Note) -> float | None:
    value = holder.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    note(f"{where}.{key} is {preview(value)}, not a finite number; skipped")
    return None


def preview(value: Any) -> str:
    """A value's kind and a short repr of it, for a warning."""
    kind = {
        str: "a string",
        bytes: "bytes",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, bytes):
        shown = repr(value[:40])
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        shown = f"an integer of {value.bit_length()} bits"
        return shown
    else:
        try:
            shown = repr(value)
        except Exception:  # a value so nested its repr recurses too deep
            shown = "…"
    if len(shown) > 40:
        shown = shown[:39] + "…"
    return f"{kind} {shown}" if kind != "null" else "null"
