"""An in-memory provider for scheduler tests: the provider interface is the scheduler's transport.

It answers with the number of user messages it was shown and the last user text (like the simulator), fails
on a schedule, and keeps a journal of every call (start, end, node) so tests can check ordering and limits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from rtflow.errors import AuthenticationError, ProviderConnectionError, ProviderError
from rtflow.messages import TurnOutput, TurnRequest, Usage
from rtflow.providers.base import Provider, ProviderInfo, ProviderSession


@dataclass
class Journal:
    """Every call made through any memory provider of one test."""

    calls: list[tuple[str, str, int, float, float, bool]] = field(default_factory=list)
    """(provider label, conversation id, turn index, started, ended, succeeded)."""
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_key: dict[str, int] = field(default_factory=dict)
    max_in_flight_by_key: dict[str, int] = field(default_factory=dict)
    open_sessions: int = 0


FailurePlan = Callable[[str, str, int, int], ProviderError | None]
"""(provider label, conversation id, turn index, attempt number for that call) -> error to raise, or None."""


class MemoryProvider(Provider):
    kind = "memory:echo"

    def __init__(
        self,
        label: str,
        journal: Journal,
        *,
        fail: FailurePlan | None = None,
        delay: float = 0.0,
        max_concurrency: int | None = None,
        holds_sessions: bool = False,
        seed: int = 0,
        pause_after_reply: float | None = None,
    ) -> None:
        super().__init__(ProviderInfo(id=f"memory:echo:{label}", label=label, config={}))
        self.journal = journal
        self.fail = fail
        self.delay = delay
        self._max = max_concurrency
        self.holds_sessions = holds_sessions  # type: ignore[misc]
        self.attempts: dict[tuple[str, int], int] = {}
        self.rng = random.Random(seed)
        self.pause_after_reply = pause_after_reply

    @property
    def max_concurrency(self) -> int | None:
        return self._max

    def session(self, conversation_id: str) -> ProviderSession:
        return _MemorySession(self, conversation_id)


class _MemorySession:
    def __init__(self, provider: MemoryProvider, conversation_id: str) -> None:
        self.provider = provider
        self.conversation_id = conversation_id
        self.closed = False
        provider.journal.open_sessions += 1

    async def send(self, request: TurnRequest) -> TurnOutput:
        provider, journal = self.provider, self.provider.journal
        key = provider.info.label
        journal.in_flight += 1
        journal.max_in_flight = max(journal.max_in_flight, journal.in_flight)
        journal.in_flight_by_key[key] = journal.in_flight_by_key.get(key, 0) + 1
        journal.max_in_flight_by_key[key] = max(journal.max_in_flight_by_key.get(key, 0), journal.in_flight_by_key[key])
        started = time.monotonic()
        succeeded = False
        try:
            attempt_key = (self.conversation_id, request.turn_index)
            attempt = provider.attempts.get(attempt_key, 0) + 1
            provider.attempts[attempt_key] = attempt
            await anyio.sleep(provider.delay * provider.rng.random() if provider.delay else 0)
            error = provider.fail(key, self.conversation_id, request.turn_index, attempt) if provider.fail else None
            if error is not None:
                raise error
            users = [m for m in request.messages if m.role == "user"]
            succeeded = True
            return TurnOutput(
                text=f'You said: "{users[-1].text if users else ""}" (user messages: {len(users)}) via {key}',
                usage=Usage(input_tokens=3, output_tokens=5, total_tokens=8),
                rate_limit_pause_s=provider.pause_after_reply,
            )
        finally:
            journal.in_flight -= 1
            journal.in_flight_by_key[key] -= 1
            journal.calls.append((key, self.conversation_id, request.turn_index, started, time.monotonic(), succeeded))

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.provider.journal.open_sessions -= 1


def connection_error(label: str) -> ProviderError:
    return ProviderConnectionError("connection dropped (1006)", provider=label)


def auth_error(label: str) -> ProviderError:
    return AuthenticationError("403 Forbidden", provider=label, status=403)
