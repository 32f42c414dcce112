"""Validate server events against the official `openai` package's event types, strictly.

The package's `RealtimeServerEvent` unions are not discriminated for pydantic and allow extra keys, so this
builds a tagged union on `type` and then walks every validated model for keys the types do not declare. The GA
union rejects beta event names and vice versa, so validation is also a dialect check. The one allowance is the
live service's `session.id` / `session.object` on GA `session.created`/`session.updated`.
"""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent as GAServerEvent
from pydantic import BaseModel, Field, TypeAdapter

__all__ = ["assert_valid_events", "validate_event"]


def _tagged(union: Any) -> TypeAdapter[Any]:
    members = get_args(union)
    if members and not isinstance(members[0], type):
        members = get_args(members[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


_ADAPTERS = {"ga": _tagged(GAServerEvent), "beta": _tagged(BetaServerEvent)}
_ALLOWED_EXTRA = frozenset({"event.session.id", "event.session.object"})


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
    # The live service's `session.id` / `session.object`, directly under a GA event's session, are allowed.
    extra = [key for key in extra if not (dialect == "ga" and key in _ALLOWED_EXTRA)]
    assert not extra, f"{dialect} event {event.get('type')!r} has keys the official types do not declare: {extra}"
    assert isinstance(model, BaseModel)
    return model


def assert_valid_events(events: list[dict[str, Any]], dialect: str = "ga") -> None:
    """Validate every event in `events`."""
    for event in events:
        validate_event(event, dialect)
