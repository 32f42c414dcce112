"""A hostile Realtime server of the tests' own, and the helpers that drive a provider against it.

The server is plain `websockets.asyncio.server.serve` on 127.0.0.1, port 0: nothing of rtflow's simulator, so
it can do what a well-behaved server never does. Each test scripts it: `script(peer)` runs once per connection
and sends whatever it likes (bad JSON, wrong field types, interleaved responses, huge frames, the key itself);
`handshake(connection, request)` may answer the HTTP upgrade instead (a 429, a redirect, a stall). Every test
runs its turn under `anyio.fail_after(DEADLINE)`, so a wait that is not bounded fails the test instead of
hanging it.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtflow.errors import ProviderError
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider, RealtimeSession

CANARY = "sk-CANARY-hostile-5e1f0c9a7b3d4c2b"
"""The API key every test uses; it must never appear in a message, a warning or a log line."""
DEADLINE = 5.0
"""Seconds within which every turn of these tests must end, however the server behaves."""
USAGE = {
    "total_tokens": 30,
    "input_tokens": 20,
    "output_tokens": 10,
    "input_token_details": {"cached_tokens": 4, "text_tokens": 16, "audio_tokens": 0},
    "output_token_details": {"text_tokens": 10, "audio_tokens": 0},
}

Script = Callable[["Peer"], Awaitable[None]]
Handshake = Callable[[ServerConnection, Request], Awaitable[Response | None]]


class Peer:
    """The server's end of one connection, with the steps a script takes."""

    def __init__(self, connection: ServerConnection, server: HostileServer) -> None:
        self.connection = connection
        self.server = server

    async def send(self, *events: dict[str, Any]) -> None:
        """Send events as JSON frames, in order."""
        for event in events:
            await self.connection.send(json.dumps(event))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given."""
        await self.connection.send(frame)

    async def expect(self, event_type: str) -> dict[str, Any]:
        """Read client events (all are recorded) up to the first of `event_type`."""
        while True:
            event = json.loads(await self.connection.recv())
            self.server.received.append(event)
            if event.get("type") == event_type:
                return dict(event)

    async def open_turn(self, *, greet: bool = True) -> str:
        """`session.created` (unless `greet` is false), then read up to the turn's `response.create`; its event_id."""
        if greet:
            await self.send(session_created())
        return str((await self.expect("response.create"))["event_id"])

    async def hold(self) -> None:
        """Say nothing until the client goes away or the test ends."""
        with anyio.move_on_after(DEADLINE * 2):
            await self.connection.wait_closed()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection with a close frame of this code and reason."""
        await self.connection.close(code, reason)


class HostileServer:
    """A scripted WebSocket server on loopback. `base_url` is what a provider's `api_base_url` takes."""

    def __init__(self, script: Script | None = None, *, handshake: Handshake | None = None) -> None:
        self.script = script
        self.handshake = handshake
        self.handshakes: list[Headers] = []
        """The request headers of every upgrade request this server received."""
        self.paths: list[str] = []
        self.received: list[dict[str, Any]] = []
        """Every client event scripts read, in order."""
        self._server: Server | None = None
        self._released: anyio.Event | None = None
        self._port: int | None = None

    async def stall_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """A `handshake` that never answers the upgrade (until the test is over)."""
        assert self._released is not None
        await self._released.wait()
        return connection.respond(503, "gone\n")

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._released = anyio.Event()
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, max_size=None, compression=None
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._released is not None
        self._released.set()
        self._server.close()
        with anyio.move_on_after(2):
            await self._server.wait_closed()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(request.headers)
        self.paths.append(request.path)
        if self.handshake is not None:
            return await self.handshake(connection, request)
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        if self.script is None:
            return
        with contextlib.suppress(ConnectionClosed):  # the client gave up (as it should, on a hostile server)
            await self.script(Peer(connection, self))


# ----------------------------------------------------------------------------------------- server events


def session_created(model: str = "gpt-realtime") -> dict[str, Any]:
    return {"type": "session.created", "event_id": "event_s1", "session": {"id": "sess_1", "model": model}}


def response_created(response_id: str, *, conversation_id: str | None = "conv_1") -> dict[str, Any]:
    return {
        "type": "response.created",
        "response": {"id": response_id, "status": "in_progress", "output": [], "conversation_id": conversation_id},
    }


def item_added(response_id: str, item_id: str) -> dict[str, Any]:
    return {
        "type": "response.output_item.added",
        "response_id": response_id,
        "output_index": 0,
        "item": {"id": item_id, "type": "message", "role": "assistant", "content": []},
    }


def text_delta(response_id: str | None, text: str, item_id: str = "item_1") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.output_text.delta", "item_id": item_id, "delta": text}
    if response_id is not None:
        event["response_id"] = response_id
    return event


def response_done(
    response_id: str,
    text: str | None = None,
    *,
    status: str = "completed",
    usage: Any = None,
    content: Any = None,
    status_details: Any = None,
    conversation_id: str | None = "conv_1",
) -> dict[str, Any]:
    """`response.done`; `content` replaces the message item's content (for wrong types), `text` fills it."""
    output: list[Any] = []
    if content is not None or text is not None:
        parts = content if content is not None else [{"type": "output_text", "text": text}]
        output.append({"id": "item_1", "type": "message", "role": "assistant", "content": parts})
    return {
        "type": "response.done",
        "response": {
            "id": response_id,
            "status": status,
            "status_details": status_details,
            "output": output,
            "conversation_id": conversation_id,
            "usage": USAGE if usage is None else usage,
        },
    }


def answer(response_id: str, text: str, *, item_id: str = "item_1", usage: Any = None) -> list[dict[str, Any]]:
    """A whole well-formed text response: created, item, one delta per word, done."""
    words = text.split(" ")
    deltas = [
        text_delta(response_id, word if i == len(words) - 1 else word + " ", item_id) for i, word in enumerate(words)
    ]
    return [
        response_created(response_id),
        item_added(response_id, item_id),
        *deltas,
        response_done(response_id, text, usage=usage),
    ]


def error_event(
    message: str, *, code: str | None = None, kind: str = "invalid_request_error", event_id: Any = None
) -> dict[str, Any]:
    return {
        "type": "error",
        "event_id": "event_e1",
        "error": {"type": kind, "code": code, "message": message, "param": None, "event_id": event_id},
    }


def audio_delta(response_id: str, payload: str) -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "response_id": response_id, "item_id": "item_1", "delta": payload}


def pcm_base64(samples: int) -> str:
    return base64.b64encode(b"\x00\x01" * samples).decode()


# ----------------------------------------------------------------------------------------- the client side


def provider(server: HostileServer | str, **config: Any) -> RealtimeProvider:
    """A Realtime provider pointed at the server, with the canary key and short timeouts."""
    base_url = server if isinstance(server, str) else server.base_url
    settings = {"api_base_url": base_url, "api_key": CANARY, "websocket_timeout": "1s", "connect_timeout": "1s"}
    settings.update(config)
    info = ProviderInfo(id="openai:realtime:gpt-realtime", label="hostile", config=settings, base_dir=Path.cwd())
    return RealtimeProvider(info)


def request(text: str = "hello", *, turn_index: int = 0, history: list[Message] | None = None) -> TurnRequest:
    messages = [*(history or []), Message.of("user", text)]
    return TurnRequest(conversation_id="hostile", turn_index=turn_index, messages=messages)


async def one_turn(session: RealtimeSession, turn: TurnRequest | None = None) -> TurnOutput | ProviderError:
    """The turn's outcome: its output, or the ProviderError it raised. Anything else fails the test."""
    with anyio.fail_after(DEADLINE):
        try:
            return await session.send(turn or request())
        except ProviderError as exc:
            return exc


@asynccontextmanager
async def running(script: Script | None = None, *, handshake: Handshake | None = None) -> AsyncIterator[HostileServer]:
    async with HostileServer(script, handshake=handshake) as server:
        yield server


async def ask(script: Script, **config: Any) -> tuple[TurnOutput | ProviderError, RealtimeSession, HostileServer]:
    """One turn against a fresh server running `script`: (outcome, the session, the server)."""
    async with running(script) as server:
        session = provider(server, **config).session("hostile")
        outcome = await one_turn(session)
        with anyio.fail_after(DEADLINE):
            await session.aclose()
    return outcome, session, server


def all_text(outcome: TurnOutput | ProviderError, session: RealtimeSession) -> Iterator[str]:
    """Every text a turn produced that a person or a store could see."""
    yield str(outcome)
    if isinstance(outcome, TurnOutput):
        yield outcome.model_dump_json()
    yield from session.protocol_warnings


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests never see a developer's real key or base URL."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
