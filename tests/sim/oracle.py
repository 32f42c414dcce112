"""Validate server events against the official `openai` package's event types, strictly.

The package's `RealtimeServerEvent` unions are not discriminated for pydantic and allow extra keys, so this
builds a tagged union on `type` and then walks every validated model for keys the types do not declare. The GA
union rejects beta event names and vice versa, so validation is also a dialect check. The only allowances are
keys that REALTIME_PROTOCOL.md documents as sent by the live service but not declared by the types (`_LIVE_ONLY`),
each at the exact place the live service puts it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Union, get_args

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.live import ServerEvent as LiveServerEvent
from openai.types.realtime import RealtimeServerEvent as GAServerEvent
from pydantic import BaseModel, Field, TypeAdapter

__all__ = ["assert_valid_events", "validate_event", "validate_live_event"]


def _tagged(union: Any) -> TypeAdapter[Any]:
    members = get_args(union)
    if members and not isinstance(members[0], type):
        members = get_args(members[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


_ADAPTERS = {"ga": _tagged(GAServerEvent), "beta": _tagged(BetaServerEvent), "live": _tagged(LiveServerEvent)}
_LIVE_ONLY: dict[str, list[re.Pattern[str]]] = {
    "ga": [
        # REALTIME_PROTOCOL.md "Validating events" / "What the live service really sends": live-only session keys.
        re.compile(r"event\.session\.(id|object|expires_at)"),
        # REALTIME_PROTOCOL.md "What the live service really sends": `obfuscation` on GA text, transcript,
        # function-argument and transcription deltas (the event's own key, nowhere deeper).
        re.compile(r"event\.obfuscation"),
        # REALTIME_PROTOCOL.md: `phase` (final_answer | commentary) on assistant items of newer models.
        re.compile(r"event\.(item|response\.output\[\d+\])\.phase"),
        # REALTIME_PROTOCOL.md: `usage.output_token_details.reasoning_tokens`.
        re.compile(r"event\.response\.usage\.output_token_details\.reasoning_tokens"),
    ],
    "beta": [
        # REALTIME_PROTOCOL.md: `name` on beta `response.function_call_arguments.done`.
        re.compile(r"event\.name"),
        # REALTIME_PROTOCOL.md: `cached_tokens_details` and `image_tokens` in beta `usage.input_token_details`.
        re.compile(r"event\.response\.usage\.input_token_details\.(cached_tokens_details|image_tokens)"),
    ],
    # GPT-Live (`openai.types.live`): no allowances; every key must be declared.
    "live": [],
}
_BETA_NAME_EVENT = "response.function_call_arguments.done"


def _live_only(dialect: str, event_type: Any, key: str) -> bool:
    """Whether `key` (a path) is a live-only key documented in REALTIME_PROTOCOL.md, where live puts it."""
    if dialect == "beta" and key == "event.name" and event_type != _BETA_NAME_EVENT:
        return False
    return any(pattern.fullmatch(key) for pattern in _LIVE_ONLY[dialect])


def _extras(model: BaseModel, path: str, dialect: str, found: list[str]) -> None:
    for key in model.__pydantic_extra__ or {}:
        found.append(f"{path}.{key}")
    for name in type(model).model_fields:
        _walk(getattr(model, name), f"{path}.{name}", dialect, found)


def _walk(value: Any, path: str, dialect: str, found: list[str]) -> None:
    if isinstance(value, BaseModel):
        _extras(value, path, dialect, found)
    elif isinstance(value, list | tuple):
        for index, entry in enumerate(value):
            _walk(entry, f"{path}[{index}]", dialect, found)
    elif isinstance(value, dict):
        for key, entry in value.items():
            _walk(entry, f"{path}.{key}", dialect, found)


def validate_event(event: dict[str, Any], dialect: str = "ga") -> BaseModel:
    """The event as its official model; raises AssertionError on an unknown type, a bad value or an extra key."""
    try:
        model = _ADAPTERS[dialect].validate_python(event)
    except Exception as exc:
        raise AssertionError(f"{dialect} event {event.get('type')!r} does not validate: {exc}") from exc
    extra: list[str] = []
    _extras(model, "event", dialect, extra)
    extra = [key for key in extra if not _live_only(dialect, event.get("type"), key)]
    assert not extra, f"{dialect} event {event.get('type')!r} has keys the official types do not declare: {extra}"
    assert isinstance(model, BaseModel)
    return model


def assert_valid_events(events: list[dict[str, Any]], dialect: str = "ga") -> None:
    """Validate every event in `events`."""
    for event in events:
        validate_event(event, dialect)


def validate_live_event(event: dict[str, Any]) -> BaseModel:
    """A GPT-Live server event as its official model (`openai.types.live.ServerEvent`), strictly: no extra keys."""
    return validate_event(event, "live")
