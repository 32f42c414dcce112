"""Every use of uvicorn beyond its documented API, in one place.

uvicorn documents `Config`, `Server(config)` and `await server.serve()`. The simulator needs three things more:

1. To serve inside its host's event loop without taking the host's signals. `Server.serve()` installs SIGINT and
   SIGTERM handlers while it runs (on the main thread); an embedded simulator must leave Ctrl-C to the program
   that hosts it, so `EmbeddedServer` calls the private `Server._serve(sockets=...)`, which is `serve()` without
   that wrapper. It reads `Server.started` to know when connections are accepted and sets `should_exit` and
   `force_exit` to stop without waiting for open sessions: attributes uvicorn's own signal handler uses but does
   not document.
2. To write WebSocket frames in batches (see `rtflow.sim.wire`). The ASGI `send` that uvicorn's
   `websockets-sansio` protocol hands an app is a bound method of that protocol
   (`uvicorn.protocols.websockets.websockets_sansio_impl.WebSocketsSansIOProtocol`); `SansIOWebSocket` reaches
   through it to the protocol's websockets state machine (`conn`), its `transport`, its flow control
   (`writable`) and its close state (`close_sent`, `disconnected`).
3. To drop a TCP connection without a close frame or a response (the `close:1006` fault): `abort_connection`
   aborts `send.__self__.transport`, which uvicorn's HTTP and WebSocket protocols both have.
4. To know when a client's message arrived, not when the app got to it (the event log's `in` times, which
   rtflow's own time measurements are compared with): `SansIOWebSocket.stamp_arrivals` wraps the `put_nowait`
   of the protocol's receive `queue` (an `asyncio.Queue` it fills from `data_received`) so that each
   `websocket.receive` message carries `RECEIVED_AT`, the arrival of the read that completed it
   (`rtflow.arrival_stamps`).

Checked with uvicorn 0.52.1, 0.52.4, 0.53.0, 0.54.0 and 0.55.0. 0.52.1 is the floor: it added `disconnected` and,
with it, wakes a send waiting on `writable` when the connection is lost (before, such a send waited forever);
`websockets-sansio` itself exists from 0.35. tests/sim/test_uvicorn_glue.py exercises exactly this module against a
real uvicorn, so an upgrade that moves these internals fails there, naming the part that moved.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

from rtflow.arrival_stamps import arrival_wall, stamped_socket_of

__all__ = ["RECEIVED_AT", "WEBSOCKET_PROTOCOL", "EmbeddedServer", "SansIOWebSocket", "abort_connection"]

# The `ws` setting whose protocol `SansIOWebSocket` knows how to reach.
WEBSOCKET_PROTOCOL = "websockets-sansio"
RECEIVED_AT = "rtflow.received_at"
"""The key of a `websocket.receive` message that says when it reached the machine (Unix seconds: the kernel's note
on a `StampedSocket`, else when uvicorn read it off the socket)."""


class EmbeddedServer:
    """uvicorn serving on an already bound socket inside the caller's event loop, leaving signals to the caller."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        self._server = uvicorn.Server(config)
        self._socket = sock

    @property
    def started(self) -> bool:
        """Whether the server accepts connections yet."""
        return self._server.started

    async def serve(self) -> None:
        """Serve until `stop()`."""
        await self._server._serve(sockets=[self._socket])

    def stop(self) -> None:
        """Make `serve()` return soon, closing open connections rather than waiting for them."""
        self._server.should_exit = True
        self._server.force_exit = True


class SansIOWebSocket:
    """The uvicorn `websockets-sansio` connection behind one ASGI `send`, as a frame writer needs it."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    @classmethod
    def behind(cls, send: object) -> SansIOWebSocket | None:
        """The connection `send` belongs to, or None when another server (or protocol) made `send`."""
        protocol = getattr(send, "__self__", None)
        return cls(protocol) if isinstance(protocol, WebSocketsSansIOProtocol) else None

    @property
    def closed(self) -> bool:
        """Whether no more frames can go out: the client has gone, or the closing handshake has begun."""
        protocol = self._protocol
        return protocol.disconnected or protocol.close_sent or protocol.conn.state is not State.OPEN

    @property
    def writable(self) -> bool:
        """False while the transport's buffer is over its high-water mark (the client reads slower than we write)."""
        return self._protocol.writable.is_set()

    async def wait_writable(self) -> None:
        """Wait until the transport drains below its low-water mark, or the connection is lost."""
        await self._protocol.writable.wait()

    def queue_text(self, data: bytes) -> None:
        """Frame `data` (UTF-8) as a text message in the protocol's own state machine; `write_queued` sends it."""
        try:
            self._protocol.conn.send_text(data)
        except InvalidState:
            raise ConnectionResetError("the connection is closing") from None

    def stamp_arrivals(self) -> None:
        """From now on each message the client sends carries `RECEIVED_AT`: when its data reached the machine (the
        kernel's note, on a `StampedSocket`), else when uvicorn read it off the socket (in `data_received`); either
        way before the app's `receive` got to it."""
        queue = self._protocol.queue
        put = queue.put_nowait
        wire = stamped_socket_of(self._protocol.transport)

        def stamped(message: Any) -> None:
            if message.get("type") == "websocket.receive":
                message[RECEIVED_AT] = arrival_wall(wire)
            put(message)

        queue.put_nowait = stamped  # type: ignore[method-assign,assignment]

    def write_queued(self) -> None:
        """Write every frame queued so far, in one `transport.write`."""
        protocol = self._protocol
        output = protocol.conn.data_to_send()
        if output and not protocol.disconnected and not protocol.transport.is_closing():
            protocol.transport.write(b"".join(output))


def abort_connection(send: object) -> bool:
    """Drop the TCP connection behind an ASGI `send` at once; False when `send` has no transport to abort."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True
