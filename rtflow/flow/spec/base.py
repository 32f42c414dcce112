"""What every model of the flow file shares: camelCase aliases, unknown keys named with a suggestion,
promptfoo keys that rtflow does not implement dropped with a warning."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = ["CONVERSATION_ID_KEYS", "PromptKind", "collecting_warnings"]

PromptKind = Literal["inline", "json", "text", "python", "javascript"]

CONVERSATION_ID_KEYS = ("conversationId", "conversation_id")
"""The metadata keys that group tests into one thread (promptfoo's spelling first)."""

# Characters the compiler uses to build node ids (`realtime/japan_travel/1~chat#grade`).
_NODE_ID_SEPARATORS = re.compile(r"[/~#\s]")

# Collected while one FlowSpec validates, so nested models can report dropped promptfoo keys.
_warnings_sink: ContextVar[list[str] | None] = ContextVar("rtflow_spec_warnings", default=None)


_ACCEPTED_KEYS: dict[type[_SpecModel], dict[str, str]] = {}
_CANONICAL_NAMES: dict[type, frozenset[str]] = {}


def _canonical_names(cls: type, accepted: dict[str, str]) -> frozenset[str]:
    """The spellings of `accepted` that are already the names pydantic validates by (worked out once per class)."""
    names = _CANONICAL_NAMES.get(cls)
    if names is None:
        names = _CANONICAL_NAMES[cls] = frozenset(key for key, canonical in accepted.items() if key == canonical)
    return names


class _SpecModel(BaseModel):
    """Shared behaviour: camelCase aliases, unknown keys named with a suggestion, promptfoo keys warned about."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset()
    """promptfoo keys accepted here, dropped with a warning."""
    internal_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields set by the loader, never from the file."""

    @classmethod
    def accepted_keys(cls) -> dict[str, str]:
        """Every spelling a file may use for a field, mapped to the name pydantic validates by."""
        # Asked once per mapping of the file (50,000 times in a big suite) and fixed per class: worked out once.
        cached = _ACCEPTED_KEYS.get(cls)
        if cached is None:
            cached = _ACCEPTED_KEYS[cls] = cls._spellings()
        return cached

    @classmethod
    def _spellings(cls) -> dict[str, str]:
        spellings: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            if name in cls.internal_fields:
                continue
            canonical = field.alias or name
            spellings[canonical] = canonical
            spellings[to_camel(canonical)] = canonical
        return spellings

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """Turn a shorthand form (a bare string, say) into a mapping. Subclasses override."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _normalise_keys(cls, data: Any) -> Any:
        data = cls._shorthand(data)
        if not isinstance(data, dict):
            return data
        accepted = cls.accepted_keys()
        if data.keys() <= _canonical_names(cls, accepted):
            return data  # the common case, written in canonical names only: nothing to rename, no duplicate possible
        normalised: dict[str, Any] = {}
        written_as: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise PydanticCustomError(
                    "key_type", "keys must be strings, got {key!r}", {"key": key, "bad_key": str(key)}
                )
            canonical = accepted.get(key)
            if canonical is None:
                if key in cls.promptfoo_unimplemented:
                    _warn(f"promptfoo key `{key}` ({cls.__name__}) is not implemented by rtflow and is ignored")
                    continue
                # Left in place: `extra="forbid"` reports it with its own location, and the loader adds the
                # suggestion (`unknown_key_hint`), so every unknown key of a file is reported in one go.
                normalised[key] = value
                continue
            if canonical in normalised:
                raise PydanticCustomError(
                    "duplicate_key",
                    "`{bad_key}` and `{other}` are the same key; write it once",
                    {"bad_key": key, "other": written_as[canonical]},
                )
            normalised[canonical] = value
            written_as[canonical] = key
        return normalised


def _located(path: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A whole-flow error that knows which key it is about (validation would place it at the root)."""
    return PydanticCustomError("flow_consistency", "{reason}", {"reason": message, "at": path})


def _warn(message: str) -> None:
    sink = _warnings_sink.get()
    if sink is not None and message not in sink:
        sink.append(message)


@contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Collect the warnings nested models raise while a flow validates."""
    sink: list[str] = []
    token = _warnings_sink.set(sink)
    try:
        yield sink
    finally:
        _warnings_sink.reset(token)
