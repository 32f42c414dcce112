"""Chat Completions keeps its connections alive, whatever a server does after its stream's `[DONE]`.

The server is the tests' own, plain asyncio on 127.0.0.1: it counts the TCP connections it accepts, keeps each
request line, and ends each streamed answer as told (properly, by stalling, by sending on without end, or by
closing the socket). It also serves as the proxy the environment names, which gets absolute request lines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers import chat_wire
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
        self.request_lines: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_lines.append(head.split(b"\r\n", 1)[0])
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
                if self.after_done == "close":
                    return
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


async def _ask(provider: ChatProvider, turns: int) -> list[TurnOutput]:
    session = provider.session("c")
    outputs = []
    for index in range(turns):
        request = TurnRequest(conversation_id="c", turn_index=index, messages=[Message.of("user", f"q{index}")])
        with anyio.fail_after(DEADLINE):
            outputs.append(await session.send(request))
    return outputs


def _provider(server: ChatServer, base_url: str | None = None) -> ChatProvider:
    config = {
        "api_base_url": base_url or f"http://127.0.0.1:{server.port}/v1",
        "api_key": "sk-test",
        "request_timeout": "60s",
    }
    return ChatProvider(ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=config))


async def test_streamed_answers_one_after_another_share_one_connection() -> None:
    """Leaving the end of the chunked body unread closed the connection: every request opened a new one (on the
    real endpoint, a TCP and a TLS handshake per request)."""
    async with ChatServer("end").running() as server:
        provider = _provider(server)
        try:
            assert [output.text for output in await _ask(provider, 5)] == ["hello"] * 5
        finally:
            await provider.aclose()
    assert server.connections == 1


async def test_answers_at_once_then_again_reuse_the_connections_they_opened() -> None:
    """20 requests at once open at most 20 connections; 20 more after them open none (spread over several pools,
    each connection is found again by a later request)."""
    async with ChatServer("end").running() as server:
        provider = _provider(server)
        try:
            for _ in range(2):
                async with anyio.create_task_group() as group:
                    for index in range(20):
                        group.start_soon(_ask_once, provider, index)
        finally:
            await provider.aclose()
    assert len(server.request_lines) == 40
    assert server.connections <= 20


async def _ask_once(provider: ChatProvider, index: int) -> None:
    request = TurnRequest(conversation_id=f"c{index}", turn_index=0, messages=[Message.of("user", "q")])
    with anyio.fail_after(DEADLINE):
        assert (await provider.session(f"c{index}").send(request)).text == "hello"


@pytest.mark.parametrize("after_done", ["stall", "endless", "close"])
async def test_a_server_that_misbehaves_after_done_loses_its_connection_not_the_turn(
    after_done: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each answer is in at `[DONE]`: a stream that then stalls, never ends, or is cut without its last chunk
    costs its connection (the next request opens another), never the turn, however long the request timeout.
    The time a stall is waited for is not the answer's. (The endless stream is stopped by its size: the wait is
    made long here.)"""
    monkeypatch.setattr(chat_wire, "AFTER_DONE_SECONDS", 2.0 if after_done == "stall" else 30.0)
    async with ChatServer(after_done).running() as server:
        provider = _provider(server)
        try:
            outputs = await _ask(provider, 2)
        finally:
            await provider.aclose()
    assert [output.text for output in outputs] == ["hello"] * 2
    assert server.connections == 2
    if after_done == "stall":
        assert all((output.metrics.total_ms or 0) < 1000 for output in outputs)  # 2 s were waited each


@pytest.mark.usefixtures("no_proxy_settings")
async def test_a_proxy_the_environment_names_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """`HTTP_PROXY` is honoured, through the split pools (httpx reads it only for a client without a transport of
    its own)."""
    async with ChatServer("end").running() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        provider = _provider(proxy, base_url="http://chat.example.test/v1")
        try:
            assert [output.text for output in await _ask(provider, 2)] == ["hello"] * 2
        finally:
            await provider.aclose()
    assert proxy.request_lines == [b"POST http://chat.example.test/v1/chat/completions HTTP/1.1"] * 2


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"NO_PROXY": "localhost,127.0.0.1"}, None),  # NO_PROXY alone names no proxy
        ({"HTTPS_PROXY": "http://proxy.test:3128"}, "http://proxy.test:3128"),
        ({"HTTPS_PROXY": "http://proxy.test:3128", "NO_PROXY": "api.openai.com"}, None),
        ({"ALL_PROXY": "proxy.test:3128"}, "http://proxy.test:3128"),  # no scheme: http
        ({"HTTP_PROXY": "http://proxy.test:3128"}, None),  # another scheme's
    ],
)
@pytest.mark.usefixtures("no_proxy_settings")
def test_the_proxy_for_an_endpoint_is_read_from_the_environment_once(
    variables: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a proxy that applies sends the client through it: `NO_PROXY` alone used to switch the split pools
    off (any proxy variable did)."""
    from rtflow.providers.endpoints import environment_proxy

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy("https://api.openai.com/v1/chat/completions") == expected
