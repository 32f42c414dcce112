"""Chat Completions keeps its connections alive, whatever a server does after its stream's `[DONE]`.

The server is the tests' own, plain asyncio on 127.0.0.1: it counts the TCP connections it accepts and ends
each streamed answer as told (properly, by stalling, or by sending on without end).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_chat import ChatProvider

pytestmark = pytest.mark.anyio

DEADLINE = 5.0
"""Seconds within which every turn here must end, however the server behaves after `[DONE]`."""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(text: str) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    return b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in (delta, usage))


class ChatServer:
    """Answers every POST with a streamed reply; `after_done` says how the stream ends."""

    def __init__(self, after_done: str) -> None:
        self.after_done = after_done
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                writer.write(_chunk(_sse("hello")) + _chunk(b"data: [DONE]\n\n"))
                await writer.drain()
                if self.after_done == "stall":
                    await asyncio.sleep(3600)
                while self.after_done == "endless":
                    writer.write(_chunk(b": still here\n" * 64))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ChatServer]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


async def _ask(provider: ChatProvider, turns: int) -> list[str]:
    session = provider.session("c")
    texts = []
    for index in range(turns):
        request = TurnRequest(conversation_id="c", turn_index=index, messages=[Message.of("user", f"q{index}")])
        with anyio.fail_after(DEADLINE):
            texts.append((await session.send(request)).text)
    return texts


def _provider(server: ChatServer) -> ChatProvider:
    config = {"api_base_url": f"http://127.0.0.1:{server.port}/v1", "api_key": "sk-test", "request_timeout": "60s"}
    return ChatProvider(ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=config))


async def test_streamed_answers_one_after_another_share_one_connection() -> None:
    """Leaving the end of the chunked body unread closed the connection: every request opened a new one (on the
    real endpoint, a TCP and a TLS handshake per request)."""
    async with ChatServer("end").running() as server:
        provider = _provider(server)
        try:
            assert await _ask(provider, 5) == ["hello"] * 5
        finally:
            await provider.aclose()
    assert server.connections == 1


@pytest.mark.parametrize("after_done", ["stall", "endless"])
async def test_a_server_that_goes_on_after_done_loses_its_connection_not_the_turn(after_done: str) -> None:
    """Each answer is in at `[DONE]`: a stream that then stalls, or never ends, costs its connection (the next
    request opens another), never the turn, however long the request timeout."""
    async with ChatServer(after_done).running() as server:
        provider = _provider(server)
        try:
            assert await _ask(provider, 2) == ["hello"] * 2
        finally:
            await provider.aclose()
    assert server.connections == 2
