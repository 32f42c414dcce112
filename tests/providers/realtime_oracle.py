"""The official `openai` client-event types, as a strict tagged union (the protocol oracle for tests)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from openai.types.beta.realtime import RealtimeClientEvent as BetaClientEvent
from openai.types.realtime import RealtimeClientEvent as GaClientEvent
from pydantic import BaseModel, Field, TypeAdapter


def _tagged(union: Any) -> TypeAdapter[Any]:
    members = get_args(get_args(union)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


_ADAPTERS = {"ga": _tagged(GaClientEvent), "beta": _tagged(BetaClientEvent)}


def _extra_keys(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" for key in (value.__pydantic_extra__ or {})]
        for name in type(value).model_fields:
            found += _extra_keys(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _extra_keys(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _extra_keys(item, f"{path}.{key}")
    return found


def validate_client_event(event: dict[str, Any], dialect: Literal["ga", "beta"]) -> BaseModel:
    """The event validated by the official types of `dialect`; AssertionError on any key they do not declare."""
    model = _ADAPTERS[dialect].validate_python(event)
    extras = _extra_keys(model, event["type"])
    assert not extras, f"keys the {dialect} types do not declare: {extras}"
    assert isinstance(model, BaseModel)
    return model
