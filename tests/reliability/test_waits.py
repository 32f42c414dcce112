"""Issue 11, item 2: every wait a server can ask for (or impose by silence) is bounded, and said when cut."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from rtflow.errors import ProviderConnectionError, ProviderTimeoutError, RateLimitError
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_chat import ChatProvider

from .conftest import (
    CANARY,
    DEADLINE,
    Peer,
    answer,
    ask,
    error_event,
    one_turn,
    provider,
    response_created,
    response_done,
    running,
)

pytestmark = pytest.mark.anyio


async def _refuse_429(connection: ServerConnection, request: Request) -> Response:
    response = connection.respond(429, "slow down\n")
    response.headers["Retry-After"] = "999999"
    return response


@pytest.mark.parametrize(("config", "cap"), [({}, 120.0), ({"max_retry_after": "30s"}, 30.0)])
async def test_a_huge_retry_after_at_the_handshake_is_capped(config: dict[str, Any], cap: float) -> None:
    """`Retry-After: 999999` on a 429 handshake becomes `max_retry_after` (default 2 minutes), and says so."""
    async with running(handshake=_refuse_429) as server:
        outcome = await one_turn(provider(server, **config).session("c"))
    assert isinstance(outcome, RateLimitError), outcome
    assert outcome.kind == "rate_limit" and outcome.retryable and outcome.retry_after == cap
    assert f"retry after {cap:g} s (the server asked for 999999 s; capped by max_retry_after)" in str(outcome)


async def test_an_exhausted_limit_with_a_huge_reset_holds_for_the_cap_only() -> None:
    """`rate_limits.updated {remaining: 0, reset_seconds: 1e9}` pauses the key for `max_retry_after`, noted."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        limits = [{"name": "tokens", "limit": 1000, "remaining": 0, "reset_seconds": 1e9}]
        *streamed, done = answer("resp_1", "Fine")
        await peer.send(*streamed, {"type": "rate_limits.updated", "rate_limits": limits}, done)
        await peer.hold()

    outcome, session, _server = await ask(script, max_retry_after="45s")
    assert isinstance(outcome, TurnOutput) and outcome.text == "Fine"
    assert outcome.rate_limit_pause_s == 45.0
    assert any("hold requests for 1e+09 s; held for 45 s" in text for text in session.protocol_warnings)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Rate limit reached for tokens. Please try again in 1.0s.", 1.0),
        ("Rate limit reached. Try again in 850ms.", 0.85),
        ("Rate limit reached. Please try again in 1m30s.", 90.0),
        ("Rate limit reached. Please try again in 999999s.", 120.0),
        ("Rate limit reached.", None),
    ],
)
async def test_try_again_in_sets_retry_after(message: str, expected: float | None) -> None:
    """An `error` event saying "try again in 1.0s" (or 850ms) carries that wait; a huge one is capped."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(error_event(message, code="rate_limit_exceeded", kind="rate_limit_error"))
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, RateLimitError), outcome
    assert outcome.kind == "rate_limit" and outcome.retry_after == expected
    if expected == 120.0:
        assert "capped by max_retry_after" in str(outcome)


async def test_a_rate_limited_response_says_when_to_retry() -> None:
    """A `response.done` failed for a rate limit carries the wait its message names."""
    details = {
        "type": "failed",
        "error": {"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "Please try again in 20s."},
    }

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(response_created("resp_1"), response_done("resp_1", status="failed", status_details=details))
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, RateLimitError) and outcome.retry_after == 20.0
    assert "response failed: Please try again in 20s.; retry after 20 s" in str(outcome)


async def test_a_server_that_goes_silent_times_out() -> None:
    """session.created, then nothing: a ProviderTimeoutError after about `websocket_timeout`."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.hold()

    started = time.perf_counter()
    outcome, _session, _server = await ask(script, websocket_timeout="300ms")
    assert isinstance(outcome, ProviderTimeoutError) and outcome.kind == "timeout" and outcome.retryable
    assert "no event from the server for 0.3 s" in str(outcome)
    assert 0.25 < time.perf_counter() - started < 2


async def test_a_server_that_never_answers_the_upgrade_is_a_connection_error() -> None:
    """An upgrade request left unanswered fails after `connect_timeout`."""
    started = time.perf_counter()
    async with running() as server:
        server.handshake = server.stall_handshake
        outcome = await one_turn(provider(server, connect_timeout="300ms").session("c"))
    assert isinstance(outcome, ProviderConnectionError) and outcome.kind == "connection"
    assert "no session within 0.3 s" in str(outcome)
    assert time.perf_counter() - started < DEADLINE


async def test_a_server_that_never_sends_session_created_is_a_connection_error() -> None:
    """An upgrade that succeeds but no `session.created` follows also ends at `connect_timeout`."""

    async def script(peer: Peer) -> None:
        await peer.send({"type": "conversation.created", "conversation": {"id": "conv_1"}})
        await peer.hold()

    outcome, session, _server = await ask(script, connect_timeout="300ms")
    assert isinstance(outcome, ProviderConnectionError) and "no session within 0.3 s" in str(outcome)
    assert any("before session.created" in text for text in session.protocol_warnings)


async def test_chat_429_waits_are_capped_too() -> None:
    """Chat Completions: `Retry-After: 999999` is capped; a body's "try again in 2.5s" is read when no header."""
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "999999"}, json={"error": {"message": "slow"}}),
            httpx.Response(429, json={"error": {"message": "Please try again in 2.5s.", "code": "rate_limit"}}),
        ]
    )
    chat = ChatProvider(
        ProviderInfo(id="openai:chat:gpt-4.1", label="chat", config={"api_key": CANARY, "max_retry_after": "10s"}),
        transport=httpx.MockTransport(lambda request: next(replies)),
    )
    turn = TurnRequest(conversation_id="c", turn_index=0, messages=[Message.of("user", "hi")])
    errors = []
    for _ in range(2):
        with pytest.raises(RateLimitError) as caught:
            await chat.session("c").send(turn)
        errors.append(caught.value)
    await chat.aclose()
    assert errors[0].retry_after == 10.0 and "capped by max_retry_after" in str(errors[0])
    assert errors[1].retry_after == 2.5
