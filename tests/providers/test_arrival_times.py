"""A server message is timed from when it arrived, not from when a task got around to reading it: under load the
reader runs late, and the playback clock and every latency would start late with it. Real sockets on loopback."""

from __future__ import annotations

import time

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve

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
