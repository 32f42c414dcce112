"""What a server's own rate-limit figures say about when to send the next request, and how long rtflow waits.

The Realtime API reports `rate_limits.updated` events (`[{name, limit, remaining, reset_seconds}]`); Chat
Completions reports `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (`"1s"`, `"6m0s"`, `"250ms"`).
Both become one number, the seconds to hold new calls because a limit is exhausted, which a provider puts on
its `TurnOutput.rate_limit_pause_s` for the scheduler to apply to every caller of the same key. A refusal's
`Retry-After` header (seconds or an HTTP date) is read here too, and so is the "try again in 1.5s" of a
rate-limit message (the Realtime API says when to retry only in words).

Every wait a server asks for is capped by the provider's `max_retry_after`: `capped_wait` applies the cap and
`retry_hint` words it for an error message, so that a message always says when a wait was cut short.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_MAX_RETRY_AFTER",
    "capped_wait",
    "pause_from_headers",
    "pause_from_realtime_limits",
    "retry_after_from_text",
    "retry_after_header",
    "retry_hint",
]

DEFAULT_MAX_RETRY_AFTER = 120.0
"""Seconds: the longest wait a server may impose unless a provider's `max_retry_after` says otherwise."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SPOKEN_UNIT = r"(?:milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|h)(?![a-z])"
_TRY_AGAIN = re.compile(rf"try again in\s+((?:\d+(?:\.\d+)?\s*{_SPOKEN_UNIT}\s*)+)", re.IGNORECASE)
_SPOKEN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)
_SPOKEN_UNITS = {"ms": 0.001, "millisecond": 0.001, "s": 1.0, "sec": 1.0, "second": 1.0}
_SPOKEN_UNITS |= {"m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def capped_wait(seconds: float | None, cap: float) -> tuple[float | None, bool]:
    """`seconds` held to `[0, cap]`, and whether the cap cut it; None stays None (no wait was asked)."""
    if seconds is None:
        return None, False
    if not seconds >= 0:  # negative or NaN: the server asked for nothing usable
        return 0.0, False
    if seconds > cap:
        return cap, True
    return seconds, False


def retry_hint(asked: float | None, cap: float) -> tuple[float | None, str]:
    """The wait to use for a server's request of `asked` seconds, and the words that say so in a message
    (`; retry after 7 s`, or `; retry after 60 s (the server asked for 999999 s; capped by max_retry_after)`)."""
    wait, capped = capped_wait(asked, cap)
    if wait is None:
        return None, ""
    if capped:
        return wait, f"; retry after {wait:g} s (the server asked for {asked:g} s; capped by max_retry_after)"
    return wait, f"; retry after {wait:g} s"


def pause_from_realtime_limits(limits: Iterable[Any]) -> float | None:
    """The longest `reset_seconds` among limits with nothing remaining, else None.

    Takes the event's raw entries or read ones (anything with `remaining` and `reset_seconds`); an entry whose
    figures are not finite numbers counts for nothing.
    """
    pauses: list[float] = []
    for limit in limits:
        if isinstance(limit, Mapping):
            remaining, reset = limit.get("remaining"), limit.get("reset_seconds")
        else:
            remaining, reset = getattr(limit, "remaining", None), getattr(limit, "reset_seconds", None)
        remaining_value = _number(remaining)
        if remaining_value is None or remaining_value > 0:
            continue
        pauses.append(_number(reset) or 0.0)
    return max(pauses) if pauses else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return _finite(float(value))
    except OverflowError:  # an integer too large for a float
        return None


def retry_after_header(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (seconds, or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = _finite(float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    return None if seconds is None else max(seconds, 0.0)


def retry_after_from_text(text: str | None) -> float | None:
    """Seconds from a message's "try again in 1.5s" (or `850ms`, `1m30s`, `20 seconds`); None when it says none."""
    if not text:
        return None
    match = _TRY_AGAIN.search(text)
    if match is None:
        return None
    total = 0.0
    for number, unit in _SPOKEN_PART.findall(match.group(1)):
        name = unit.lower().rstrip("s") if len(unit) > 2 else unit.lower()
        total += float(number) * _SPOKEN_UNITS.get(name, _SPOKEN_UNITS.get(unit.lower(), 0.0))
    return _finite(total)


def _reset_seconds(value: str) -> float | None:
    parts = _DURATION_PART.findall(value)
    if not parts:
        try:
            return _finite(float(value))
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
