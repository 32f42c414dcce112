"""Issue 11, item 6: how a server ends a connection is told as what it is (a refused key, a frame too large)."""

from __future__ import annotations

import time

import pytest

from rtflow.errors import AuthenticationError, ProtocolError

from .conftest import CANARY, DEADLINE, Peer, all_text, ask, error_event, response_created

pytestmark = pytest.mark.anyio


async def test_the_bad_key_answer_is_an_authentication_error() -> None:
    """The live service's answer to a bad key (an `error` event with `invalid_api_key`, then close 3000)."""

    async def script(peer: Peer) -> None:
        await peer.send(
            error_event(f"Incorrect API key provided: {CANARY[:8]}****{CANARY[-4:]}.", code="invalid_api_key")
        )
        await peer.close(3000, "invalid_api_key")

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, AuthenticationError), outcome
    assert outcome.kind == "authentication" and not outcome.retryable and outcome.code == "invalid_api_key"
    assert "the server refused the API key (from config api_key)" in str(outcome)
    assert all(CANARY not in text for text in all_text(outcome, session))


async def test_close_3000_alone_is_an_authentication_error() -> None:
    """Close 3000 (IANA: unauthorized) without an error event first is an authentication failure too."""

    async def script(peer: Peer) -> None:
        await peer.close(3000, "unauthorized")

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, AuthenticationError) and outcome.kind == "authentication"
    assert "closed the connection as unauthorized (close 3000 unauthorized)" in str(outcome)


async def test_a_frame_larger_than_the_limit_is_named_as_such() -> None:
    """A 17 MiB frame is reported as larger than the client's 16 MiB limit (close 1009), not as "code 1006"."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(response_created("resp_1"))
        await peer.send_raw('{"type": "response.output_text.delta", "delta": "' + "x" * (17 * 2**20) + '"}')
        await peer.hold()

    started = time.perf_counter()
    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, ProtocolError) and outcome.kind == "protocol" and outcome.retryable
    assert "the server sent a frame larger than 16 MiB" in str(outcome) and outcome.code == "1009"
    assert time.perf_counter() - started < DEADLINE


async def test_a_text_frame_that_is_not_utf8_is_a_protocol_error() -> None:
    """A text frame of invalid UTF-8 makes the client close with 1007, told as the server's protocol fault."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.connection.send(b'{"type": "\xff\xfe"}', text=True)
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, ProtocolError) and outcome.code == "1007"
    assert "the server broke the WebSocket protocol" in str(outcome)
