"""Issue 11, item 5: the key never leaves in server text, and never travels to another origin."""

from __future__ import annotations

import logging

import httpx
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from rtflow.errors import InvalidRequestError, ProtocolError, ProviderError
from rtflow.log import capture_events
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_chat import ChatProvider

from .conftest import (
    CANARY,
    HostileServer,
    Peer,
    all_text,
    answer,
    ask,
    error_event,
    one_turn,
    provider,
    running,
)

pytestmark = pytest.mark.anyio


async def test_a_key_echoed_in_an_error_event_is_redacted() -> None:
    """An `error` event quoting the key (in its message, code and type) shows `***` in the error and logs."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(error_event(f"Incorrect API key provided: {CANARY}.", code=CANARY, kind=f"x{CANARY}"))
        await peer.hold()

    with capture_events() as logged:
        outcome, session, _server = await ask(script)
    assert isinstance(outcome, ProviderError)
    assert "Incorrect API key provided: ***" in str(outcome)
    for text in [*all_text(outcome, session), str(outcome.code), *(str(event) for event in logged)]:
        assert CANARY not in text


async def test_a_key_echoed_in_a_close_reason_is_redacted() -> None:
    """A close frame whose reason is the key becomes an error message without it."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.close(1008, f"policy violation for {CANARY}")

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, ProviderError) and outcome.kind == "connection"
    assert "code 1008 policy violation for ***" in str(outcome)
    assert all(CANARY not in text for text in all_text(outcome, session))


async def test_a_key_echoed_in_a_handshake_body_is_redacted_whole() -> None:
    """A refusal body that quotes the key right where the message is shortened leaves no fragment of it."""

    async def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(400, "x" * 290 + CANARY + " and more\n")

    async with running(handshake=refuse) as server:
        outcome = await one_turn(provider(server).session("c"))
    assert isinstance(outcome, InvalidRequestError) and outcome.status == 400
    assert CANARY[:10] not in str(outcome)


async def test_a_key_echoed_in_the_answer_or_warnings_is_redacted() -> None:
    """A server that says the key in its answer, or in a malformed frame, has it removed from both."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send_raw("not json " + CANARY)
        await peer.send(*answer("resp_1", f"Your key is {CANARY}"))

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Your key is ***"
    assert session.protocol_warnings and all(CANARY not in text for text in all_text(outcome, session))


def _redirect_to(target: HostileServer, status: int = 302) -> object:
    async def redirect(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, "moved\n")
        response.headers["Location"] = f"ws://127.0.0.1:{target.port}/v1/realtime?model=gpt-realtime"
        return response

    return redirect


@pytest.mark.parametrize("azure", [False, True], ids=["bearer", "azure-api-key"])
async def test_a_redirect_to_another_origin_is_refused(azure: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A 302 to another port is refused with a clear message; the other server never sees a request."""
    caplog.set_level(logging.DEBUG)

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(*answer("resp_1", "you should not be here"))

    async with running(script) as elsewhere, running() as origin:
        origin.handshake = _redirect_to(elsewhere)  # type: ignore[assignment]
        outcome = await one_turn(provider(origin, azure=azure).session("c"))
    assert isinstance(outcome, InvalidRequestError) and not outcome.retryable
    assert outcome.code == "cross_origin_redirect"
    assert f"redirected the handshake to another origin (ws://127.0.0.1:{elsewhere.port}/v1/realtime" in str(outcome)
    assert "set api_base_url" in str(outcome)
    assert elsewhere.handshakes == []
    header = "api-key" if azure else "Authorization"
    assert CANARY in origin.handshakes[0].get(header, "")
    client_log = [record.getMessage() for record in caplog.records if record.name.startswith("rtflow")]
    assert client_log and all(CANARY not in line for line in client_log)  # websockets' handshake log, redacted


async def test_a_redirect_within_the_origin_is_followed_with_the_key() -> None:
    """A redirect to another path of the same host and port keeps the headers and works."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(*answer("resp_1", "Moved but fine"))

    async def redirect_once(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/v1/realtime"):
            response = connection.respond(307, "moved\n")
            response.headers["Location"] = "/v2/realtime?model=gpt-realtime"
            return response
        return None

    async with running(script, handshake=redirect_once) as server:
        outcome = await one_turn(provider(server).session("c"))
    assert isinstance(outcome, TurnOutput) and outcome.text == "Moved but fine"
    assert [path.split("?")[0] for path in server.paths] == ["/v1/realtime", "/v2/realtime"]
    assert server.handshakes[1]["Authorization"] == f"Bearer {CANARY}"


async def test_a_redirect_loop_within_the_origin_fails_the_turn_with_a_reason() -> None:
    """A server that redirects every handshake to itself: the turn fails after ten redirects, saying so, and each
    was followed on a connection of its own."""

    async def redirect_always(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(302, "moved\n")
        response.headers["Location"] = "/v1/realtime?model=gpt-realtime"
        return response

    async with running(handshake=redirect_always) as server:
        outcome = await one_turn(provider(server).session("c"))
    assert isinstance(outcome, ProtocolError)
    assert "more than 10 redirects" in str(outcome) and CANARY not in str(outcome)
    assert len(server.paths) == 11


@pytest.mark.parametrize("azure", [False, True], ids=["bearer", "azure-api-key"])
async def test_chat_redirects_keep_the_key_within_the_origin(azure: bool) -> None:
    """Chat: a 307 within the origin is followed with the key; a 302 to another host is refused before it is sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/chat/completions":
            return httpx.Response(307, headers={"Location": "/v1/moved/chat/completions"})
        if request.url.path == "/v1/moved/chat/completions":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example/v1/chat/completions"})
        return httpx.Response(200, json={"choices": [{"message": {"content": "leaked"}}]})

    config = {"api_key": CANARY, "stream": False, "api_base_url": "https://api.example/v1", "azure": azure}
    chat = ChatProvider(
        ProviderInfo(id="openai:chat:gpt-4.1", label="chat", config=config), transport=httpx.MockTransport(handler)
    )
    turn = TurnRequest(conversation_id="c", turn_index=0, messages=[Message.of("user", "hi")])
    with pytest.raises(InvalidRequestError) as caught:
        await chat.session("c").send(turn)
    await chat.aclose()
    assert caught.value.code == "cross_origin_redirect"
    assert "redirected the request to another origin (https://elsewhere.example/" in str(caught.value)
    assert [request.url.host for request in seen] == ["api.example", "api.example"]
    header = "api-key" if azure else "Authorization"
    assert all(CANARY in request.headers[header] for request in seen)
