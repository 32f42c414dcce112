"""A provider entry of a flow: a bare id, or an id with a label, a config and fallbacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from rtflow.flow.spec.base import (
    _NODE_ID_SEPARATORS,
    _SpecModel,
)
from rtflow.providers.base import ProviderInfo

__all__ = ["ProviderSpec"]


class ProviderSpec(_SpecModel):
    """One provider entry: a bare id string, or a mapping with a label, config and fallbacks."""

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset({"delay", "prompts", "env"})

    id: str = Field(pattern=r"^[^:\s]+:[^:\s]+(:\S.*)?$")
    """`kind:api:model`, for example `openai:realtime:gpt-realtime` or `openai:chat:gpt-4.1-mini`."""
    label: str | None = None
    """Display name and node-id prefix; defaults to the id. No `/`, `~`, `#` or spaces."""
    config: dict[str, Any] = Field(default_factory=dict, repr=False)  # may hold a rendered key: keep out of reprs
    """Provider settings as written (after `{{ env.NAME }}` rendering); each provider validates its own keys."""
    transform: str | None = None
    """promptfoo's provider `transform`: the provider's output as the test's transform and assertions see it,
    made by JavaScript or `file://x.py:fn` (the stored output stays what the model said)."""
    fallback: list[ProviderSpec] = Field(default_factory=list)
    """Providers tried in order when this one fails after its retries; a single id or entry is accepted."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"id": data} if isinstance(data, str) else data

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_as_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    @field_validator("label")
    @classmethod
    def _label_fits_node_ids(cls, value: str | None) -> str | None:
        if value is not None and (not value or _NODE_ID_SEPARATORS.search(value)):
            raise ValueError(f"a label must be non-empty and hold no '/', '~', '#' or spaces, got {value!r}")
        return value

    @property
    def display_label(self) -> str:
        """The label, or the id when there is none."""
        return self.label or self.id

    def to_info(self, base_dir: Path) -> ProviderInfo:
        """The provider interface's view: config keys in snake_case, `file://` resolving against `base_dir`."""
        config = {_snake_case(key): value for key, value in self.config.items()}
        return ProviderInfo(
            id=self.id, label=self.display_label, config=config, base_dir=base_dir, transform=self.transform
        )

    def chain(self) -> list[ProviderSpec]:
        """This provider followed by its fallbacks (and theirs), in the order they are tried."""
        result: list[ProviderSpec] = [self]
        for fallback in self.fallback:
            result.extend(fallback.chain())
        return result


def _snake_case(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
