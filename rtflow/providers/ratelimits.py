"""What a server's own rate-limit figures say about when to send the next request.

The Realtime API reports `rate_limits.updated` events (`[{name, limit, remaining, reset_seconds}]`); Chat
Completions reports `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (`"1s"`, `"6m0s"`, `"250ms"`).
Both become one number, the seconds to hold new calls because a limit is exhausted, which a provider puts on
its `TurnOutput.rate_limit_pause_s` for the scheduler to apply to every caller of the same key. A refusal's
`Retry-After` header (seconds) is read here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["pause_from_headers", "pause_from_realtime_limits", "retry_after_header"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def pause_from_realtime_limits(limits: list[dict[str, Any]]) -> float | None:
    """The longest `reset_seconds` among limits with nothing remaining, else None."""
    pauses = [
        float(limit.get("reset_seconds") or 0)
        for limit in limits
        if isinstance(limit, dict) and limit.get("remaining") is not None and float(limit["remaining"]) <= 0
    ]
    return max(pauses) if pauses else None


def retry_after_header(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header in its seconds form; None when absent or not a number."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _reset_seconds(value: str) -> float | None:
    parts = _DURATION_PART.findall(value)
    if not parts:
        try:
            return float(value)
        except ValueError:
            return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def pause_from_headers(headers: Mapping[str, str]) -> float | None:
    """The reset time of any exhausted `x-ratelimit-*` budget (requests or tokens), else None."""
    pauses: list[float] = []
    for budget in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{budget}")
        reset = headers.get(f"x-ratelimit-reset-{budget}")
        if remaining is None or reset is None:
            continue
        try:
            exhausted = float(remaining) <= 0
        except ValueError:
            continue
        seconds = _reset_seconds(reset) if exhausted else None
        if seconds is not None:
            pauses.append(seconds)
    return max(pauses) if pauses else None
