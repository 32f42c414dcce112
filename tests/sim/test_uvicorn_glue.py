"""The uvicorn internals the simulator relies on still behave as `rtflow.sim.uvicorn_glue` expects.

Each test serves a tiny ASGI app (not the simulator) with a real uvicorn, so a uvicorn upgrade that moves an
internal fails here, with the glue's own error, before it fails anywhere else. Errors raised inside the app are
collected and re-raised by the test: uvicorn would otherwise only log them.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.uri import parse_uri

from rtflow.arrival_stamps import StampedSocket
from rtflow.sim.uvicorn_glue import (
    RECEIVED_AT,
    WEBSOCKET_PROTOCOL,
    EmbeddedServer,
    SansIOWebSocket,
    abort_connection,
)

pytestmark = pytest.mark.anyio

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class Served:
    """A running embedded server: its port, and the errors its app raised."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.app_errors: list[BaseException] = []

    def raise_app_errors(self) -> None:
        if self.app_errors:
            raise self.app_errors[0]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Served]:
    """`handler` served by `EmbeddedServer` on a loopback port, as `SimServer` configures uvicorn."""
    sock = StampedSocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    served = Served(sock.getsockname()[1])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await handler(scope, receive, send)
        except BaseException as exc:
            served.app_errors.append(exc)
            raise

    config = uvicorn.Config(
        app, ws=WEBSOCKET_PROTOCOL, lifespan="off", log_level="critical", access_log=False, ws_ping_interval=None
    )
    server = EmbeddedServer(config, sock)
    stopped = anyio.Event()

    async def serve() -> None:
        await server.serve()
        stopped.set()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(serve)
            with anyio.move_on_after(5):
                while not server.started:
                    await anyio.sleep(0.005)
            assert server.started, "EmbeddedServer.started never became true"
            try:
                yield served
            finally:
                server.stop()
                with anyio.move_on_after(5):
                    await stopped.wait()
                assert stopped.is_set(), "EmbeddedServer.serve() did not return within 5 s of stop()"
    finally:
        sock.close()
    served.raise_app_errors()


async def open_raw_websocket(port: int) -> anyio.abc.SocketStream:
    """A WebSocket handshake over plain TCP, after which the test decides whether the client reads at all."""
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"))
    protocol.send_request(protocol.connect())
    stream = await anyio.connect_tcp("127.0.0.1", port)
    for data in protocol.data_to_send():
        await stream.send(data)
    with anyio.fail_after(5):
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await stream.receive())
    assert protocol.state is State.OPEN
    return stream


async def accept_websocket(receive: Receive, send: Send) -> SansIOWebSocket:
    """Complete the handshake and find the sans-I/O connection behind `send`."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    websocket = SansIOWebSocket.behind(send)
    assert websocket is not None, "uvicorn's websocket `send` is no longer a bound method of its sans-I/O protocol"
    return websocket


async def test_embedded_server_serves_and_stops_and_leaves_signals_alone() -> None:
    """`EmbeddedServer` serves in this event loop, stops on `stop()`, and never installs a SIGINT handler."""
    handler_before = signal.getsignal(signal.SIGINT)
    seen_during: list[object] = []

    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        seen_during.append(signal.getsignal(signal.SIGINT))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(hello) as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        await stream.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        reply = b""
        with anyio.fail_after(5):
            while not reply.endswith(b"ok"):
                reply += await stream.receive()
        await stream.aclose()
    assert reply.startswith(b"HTTP/1.1 200")
    assert seen_during == [handler_before]
    assert signal.getsignal(signal.SIGINT) is handler_before


async def test_stop_does_not_wait_for_a_request_in_flight() -> None:
    """`stop()` ends `serve()` at once although a request is still being answered (a stalled response)."""
    started, release, finished = anyio.Event(), anyio.Event(), anyio.Event()

    async def stalled(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await release.wait()
        finished.set()

    async with serving(stalled) as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        await stream.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        with anyio.fail_after(5):
            await started.wait()
    # Without `force_exit`, leaving `serving` would have waited for this request (and timed out).
    release.set()
    with anyio.fail_after(5):
        await finished.wait()
    await stream.aclose()


async def test_queued_text_frames_leave_in_order_on_one_write() -> None:
    """Frames queued in the protocol's state machine reach the client, in order, when written."""

    async def two_frames(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = await accept_websocket(receive, send)
        assert websocket.writable and not websocket.closed
        websocket.queue_text(b'{"n":1}')
        websocket.queue_text(b'{"n":2}')
        websocket.write_queued()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serving(two_frames) as served, connect(f"ws://127.0.0.1:{served.port}/") as client:
        with anyio.fail_after(5):
            assert [await client.recv(), await client.recv()] == ['{"n":1}', '{"n":2}']


async def test_a_closed_connection_is_seen_and_refuses_frames() -> None:
    """Once the client has closed, `closed` is true and queueing a frame raises ConnectionResetError."""
    after_close: dict[str, object] = {}

    async def observe_close(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = await accept_websocket(receive, send)
        while (await receive())["type"] != "websocket.disconnect":
            pass
        after_close["closed"] = websocket.closed
        with pytest.raises(ConnectionResetError):
            websocket.queue_text(b"too late")
        websocket.write_queued()  # nothing to write, and no error for a connection that is gone

    async with serving(observe_close) as served:
        async with connect(f"ws://127.0.0.1:{served.port}/"):
            pass
        with anyio.fail_after(5):
            while not after_close and not served.app_errors:
                await anyio.sleep(0.005)
    assert after_close == {"closed": True}


async def test_a_writer_waiting_on_a_slow_reader_wakes_when_the_reader_leaves() -> None:
    """Flow control: a client that stops reading makes the connection unwritable; its leaving ends the wait."""
    paused = anyio.Event()
    woke: list[bool] = []

    async def flood(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = await accept_websocket(receive, send)
        chunk = b"x" * 65536
        for _ in range(4096):  # at most 256 MB: loopback buffers fill long before that
            if not websocket.writable:
                break
            websocket.queue_text(chunk)
            websocket.write_queued()
            await anyio.sleep(0)
        assert not websocket.writable, "the transport never reported back-pressure"
        paused.set()
        with anyio.fail_after(5):
            await websocket.wait_writable()
        woke.append(websocket.closed)

    async with serving(flood) as served:
        # The client never reads: once the server is held back by it, it leaves.
        stream = await open_raw_websocket(served.port)
        with anyio.fail_after(5):
            await paused.wait()
        await stream.aclose()
        with anyio.fail_after(5):
            while not woke and not served.app_errors:
                await anyio.sleep(0.005)
    assert woke == [True]


async def test_abort_connection_drops_a_websocket_without_a_close_frame() -> None:
    """Aborting behind a WebSocket `send` ends the TCP connection and the client receives no close frame."""

    async def abort_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
        await accept_websocket(receive, send)
        assert abort_connection(send)

    async with serving(abort_after_accept) as served, connect(f"ws://127.0.0.1:{served.port}/") as client:
        with anyio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is None


async def test_abort_connection_drops_an_http_request_without_a_response() -> None:
    """Aborting behind an HTTP `send` ends the TCP connection before any byte of a response."""

    async def abort_request(scope: Scope, receive: Receive, send: Send) -> None:
        assert abort_connection(send)

    async with serving(abort_request) as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        await stream.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
            await stream.receive()
        await stream.aclose()


async def test_another_servers_send_is_left_alone() -> None:
    """A `send` that is not uvicorn's has no sans-I/O connection and no transport to abort."""

    async def plain_send(message: MutableMapping[str, Any]) -> None:
        pass

    assert SansIOWebSocket.behind(plain_send) is None
    assert abort_connection(plain_send) is False


async def test_a_message_carries_when_it_came_off_the_socket() -> None:
    """With `stamp_arrivals`, a message the app reads late still says when uvicorn read it off the socket."""
    seen: list[tuple[str, float, float]] = []

    async def late_reader(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = await accept_websocket(receive, send)
        websocket.stamp_arrivals()
        await anyio.sleep(0.3)  # the client's message arrives meanwhile
        message = await receive()
        seen.append((message["text"], message[RECEIVED_AT], time.time()))
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serving(late_reader) as served, connect(f"ws://127.0.0.1:{served.port}/") as client:
        sent_at = time.time()
        await client.send("hello")
        with anyio.fail_after(5):
            while not seen:
                await anyio.sleep(0.01)
    ((text, received_at, read_at),) = seen
    assert text == "hello"
    assert sent_at <= received_at < sent_at + 0.1  # stamped as it came in...
    assert read_at - received_at >= 0.15  # ...though the app read it about 0.3 s later


async def test_a_message_that_came_while_the_loop_was_busy_carries_when_it_reached_the_machine() -> None:
    """The server's event loop itself is blocked while the client's message arrives: uvicorn reads it 0.3 s late,
    and the message still carries the kernel's arrival time (the listening socket is a `StampedSocket`)."""
    seen: list[tuple[str, float, float]] = []

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = await accept_websocket(receive, send)
        websocket.stamp_arrivals()
        await receive()  # a first message gives the kernel time to switch stamping on
        await send({"type": "websocket.send", "text": "ready"})
        message = await receive()
        seen.append((message["text"], message[RECEIVED_AT], time.time()))
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serving(reader) as served:
        stream = await open_raw_websocket(served.port)
        async with stream:
            protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{served.port}/"), state=State.OPEN)
            protocol.send_text(b"warm-up")
            await stream.send(b"".join(protocol.data_to_send()))
            with anyio.fail_after(5):
                await stream.receive()  # "ready"
            protocol.send_text(b"hello")
            sent_at = time.time()
            await stream.send(b"".join(protocol.data_to_send()))  # on the socket before it returns
            time.sleep(0.3)  # blocking on purpose: the server's loop can read nothing meanwhile
            with anyio.fail_after(5):
                while not seen:
                    await anyio.sleep(0.01)
    ((text, received_at, read_at),) = seen
    assert text == "hello"
    assert sent_at <= received_at < sent_at + 0.1  # the kernel's arrival: right after it was sent...
    assert read_at - received_at >= 0.15  # ...though the server read it about 0.3 s later
