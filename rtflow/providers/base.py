"""The provider interface: what the scheduler needs from any model API.

A `Provider` is built once per provider entry of a flow. For each conversation the scheduler asks it for a
`ProviderSession` and sends that session one `TurnRequest` per turn, in order; the session may keep a
connection open across turns (Realtime) or be stateless (Chat). Sessions connect lazily on their first send
and are closed by the scheduler when the conversation ends, fails or is cancelled.

Providers classify their own failures by raising `rtflow.errors.ProviderError` subclasses with `retryable`
and `retry_after` set; library exceptions (websockets, httpx) never leave a provider. The scheduler stays
vendor-free: it only reads `concurrency_key`, `max_concurrency` and those error attributes.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rtflow.messages import TurnOutput, TurnRequest

__all__ = ["Provider", "ProviderInfo", "ProviderSession"]


@dataclass(frozen=True)
class ProviderInfo:
    """What a flow says about one provider, after `{{ env.NAME }}` rendering."""

    id: str
    """The full id, `kind:api:model` (for example `openai:realtime:gpt-realtime`)."""
    label: str
    """The provider's display name and node-id prefix; defaults to the id."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The provider's `config` block, keys in snake_case."""
    base_dir: Path = field(default_factory=Path.cwd)
    """The flow file's folder, against which `file://` references resolve."""
    transform: str | None = None
    """The flow's `transform` for this provider's outputs, applied before the assertions judge them."""

    @property
    def model(self) -> str:
        """The part of the id after `kind:api:`."""
        parts = self.id.split(":", 2)
        return parts[2] if len(parts) == 3 else ""


class ProviderSession(Protocol):
    """One conversation's connection to a provider."""

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Answer one turn. Raises `ProviderError` subclasses only."""
        ...

    async def aclose(self) -> None:
        """Release the connection. Safe to call twice, and after a failure."""
        ...


class Provider(abc.ABC):
    """A model API. Subclasses set `kind` and implement `session`."""

    kind: ClassVar[str]
    """The `kind:api` prefix this class serves, for example `openai:realtime`."""
    holds_sessions: ClassVar[bool] = False
    script_steps: ClassVar[frozenset[str]] = frozenset()
    """The steps of a thread's script this provider can play (`interrupt`, `silence`, `wait_for`, `dtmf`)."""
    """True when a session keeps a connection open across turns (its limit counts sessions, not requests)."""

    def __init__(self, info: ProviderInfo) -> None:
        self.info = info

    @property
    def concurrency_key(self) -> str:
        """Calls with the same key share `max_concurrency` and rate limits (same endpoint and model)."""
        return self.info.id

    @property
    def endpoint(self) -> str | None:
        """Where this provider's calls go (its base URL), for the run's record; None for one that calls nothing."""
        return None

    @property
    def instructions(self) -> str | None:
        """The system prompt this provider sends outside the messages (a Realtime session's), if any."""
        return None

    @property
    def keeps_history(self) -> bool:
        """Whether each turn is sent with the conversation so far (false: only the turn's own prompt messages)."""
        return True

    @property
    def max_concurrency(self) -> int | None:
        """The most calls (or sessions) in flight at once for this key; None for no limit of its own."""
        value = self.info.config.get("max_concurrency")
        return int(value) if value is not None else None

    @property
    def per_minute_limits(self) -> tuple[float | None, float | None]:
        """Requests and tokens per minute allowed for this key, from the validated config; None for no limit.

        The scheduler reads limits here, never from the raw config: `rpm: "60"` (or `"{{ env.RPM }}"`, which
        renders to text) is a number once the provider has validated it."""
        return None, None

    def check_ready(self) -> None:
        """Raise a `ProviderError` when no call can succeed as configured (no API key); opens no connection.
        Called once before a run so a missing key is one clear message, not an error on every turn."""

    def warnings(self) -> list[str]:
        """Things in the config that will not do what the user may expect (shown by validate and run)."""
        return []

    @abc.abstractmethod
    def session(self, conversation_id: str) -> ProviderSession:
        """A session for one conversation; it connects on its first `send`."""

    async def aclose(self) -> None:
        """Release shared resources (connection pools). Called once at the end of a run."""
