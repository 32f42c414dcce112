"""A server message is timed from when it arrived, not from when a task got around to reading it: under load the
reader runs late, and the playback clock and every latency would start late with it. Real sockets on loopback."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from pathlib import Path
from socket import socketpair

import anyio
import anyio.abc
import pytest
import trustme
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection as SyncServerConnection
from websockets.sync.server import serve as sync_serve

from rtflow.arrival_stamps import StampedSocket
from rtflow.providers.endpoints import SecretKey
from rtflow.providers.realtime_socket import arrived_at, open_socket

pytestmark = pytest.mark.anyio


async def test_a_message_read_late_is_timed_from_its_arrival() -> None:
    async def speak(connection: ServerConnection) -> None:
        await connection.send('{"type": "session.created"}')
        await connection.send('{"type": "response.done"}')
        await connection.wait_closed()

    async with serve(speak, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        key = SecretKey("sk-arrival-test", "config api_key")
        socket = await open_socket(f"ws://127.0.0.1:{port}", {}, key, proxy=False)
        try:
            await anyio.sleep(0.3)  # both messages arrive meanwhile; nothing reads them yet
            first = await socket.recv()
            first_arrival, read_at = arrived_at(socket), time.perf_counter()
            second = await socket.recv()
            second_arrival = arrived_at(socket)
        finally:
            await socket.close()
    assert first == '{"type": "session.created"}' and second == '{"type": "response.done"}'
    assert read_at - first_arrival >= 0.25  # it arrived about 0.3 s before it was read
    assert first_arrival <= second_arrival < read_at  # each message keeps its own arrival, in order


async def test_a_socket_of_another_kind_is_timed_now() -> None:
    before = time.perf_counter()
    assert before <= arrived_at(object()) <= time.perf_counter()  # type: ignore[arg-type]


async def test_a_message_that_came_while_the_loop_was_busy_is_timed_from_the_kernels_note() -> None:
    """The event loop itself is blocked while the server's message arrives: the loop's own read comes 0.3 s late,
    and the arrival is still the kernel's, when the message reached the machine."""
    sent_at, arrival, read_at = await _read_late("ws", server_tls=None)
    assert sent_at <= arrival < sent_at + 0.1  # the kernel's arrival: right after the server sent it...
    assert read_at - arrival >= 0.15  # ...though the loop read it about 0.3 s later


async def test_over_tls_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through TLS, as every connection to the live service is: asyncio reads a TLS socket through
    `recv_into`, and the note comes with it."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_tls)
    trusted = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(trusted))
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))  # the default context rtflow connects with trusts it
    sent_at, arrival, read_at = await _read_late("wss", server_tls=server_tls)
    assert sent_at <= arrival < sent_at + 0.1
    assert read_at - arrival >= 0.15


async def _read_late(scheme: str, server_tls: ssl.SSLContext | None) -> tuple[float, float, float]:
    """A server (in a thread) sends a message while this loop sleeps without yielding: when it was sent, the
    arrival rtflow gives it, and when the loop read it."""
    sent: list[float] = []

    def answer_when_asked(connection: SyncServerConnection) -> None:
        # A first exchange gives the kernel time to switch stamping on (it does so a moment after it is asked).
        connection.send('{"type": "session.created"}')
        connection.recv()
        sent.append(time.perf_counter())
        connection.send('{"type": "response.done"}')
        with contextlib.suppress(ConnectionClosed):
            connection.recv()

    with sync_serve(answer_when_asked, "127.0.0.1", 0, ssl=server_tls) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.socket.getsockname()[1]
            url = f"{scheme}://127.0.0.1:{port}"
            socket = await open_socket(url, {}, SecretKey("sk-arrival-test", "key"), proxy=False)
            try:
                await socket.recv()
                await socket.send("go")
                time.sleep(0.3)  # blocking on purpose: the loop can read nothing meanwhile
                message = await socket.recv()
                arrival, read_at = arrived_at(socket), time.perf_counter()
            finally:
                await socket.close()
        finally:
            server.shutdown()
            thread.join(5)
    assert message == '{"type": "response.done"}'
    (sent_at,) = sent
    return sent_at, arrival, read_at


@pytest.mark.usefixtures("no_proxy_settings")
async def test_through_a_proxy_the_socket_is_still_the_proxys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Realtime socket opens straight to the server only when no proxy applies: with HTTP_PROXY set, the
    connection still goes to the proxy (which refuses it here)."""
    heads: list[bytes] = []

    async def refuse(client: anyio.abc.SocketStream) -> None:
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive()
            heads.append(head)
            await client.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    proxy_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, refuse)
        with anyio.fail_after(5), pytest.raises(Exception, match="403"):
            await open_socket("ws://127.0.0.1:9/v1/realtime", {}, SecretKey("sk-proxy-test", "key"), proxy=True)
        tasks.cancel_scope.cancel()
    assert heads and heads[0].startswith(b"CONNECT 127.0.0.1:9 ")


def test_recv_into_keeps_the_standard_meaning_of_nbytes() -> None:
    """asyncio passes no `nbytes`; anyone else gets what `socket.recv_into` gives: at most `nbytes`, and a
    ValueError for a count the buffer cannot hold."""
    left, right = socketpair()
    stamped = StampedSocket(fileno=right.detach())
    with left, stamped:
        left.sendall(b"abcdef")
        buffer = bytearray(8)
        assert stamped.recv_into(buffer, 4) == 4 and buffer[:4] == b"abcd"
        assert stamped.recv_into(buffer) == 2 and buffer[:2] == b"ef"
        with pytest.raises(ValueError, match="too small"):
            stamped.recv_into(buffer, 9)
        with pytest.raises(ValueError, match="negative"):
            stamped.recv_into(buffer, -1)
