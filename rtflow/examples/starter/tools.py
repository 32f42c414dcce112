"""The handler of the flow's `opening_hours` tool: rtflow calls it with the tool's arguments, parsed from JSON."""

from __future__ import annotations

from typing import Any

_HOURS = {"monday": "closed", "saturday": "10:00-20:00", "sunday": "10:00-16:00"}


def opening_hours(args: dict[str, Any]) -> dict[str, str]:
    day = str(args.get("day") or "").strip()
    return {"day": day, "hours": _HOURS.get(day.lower(), "09:00-18:00")}
