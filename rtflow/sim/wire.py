"""Outgoing text frames of one Realtime WebSocket, coalesced into as few socket writes as the timing allows.

A text response is some twenty events that the session produces in one go when no latency is configured. Sent
one ASGI `websocket.send` at a time, each event costs a trip through the server's send path and a `send()`
system call, which made the socket writes the largest single cost of the simulator. Under uvicorn's
`websockets-sansio` protocol the writer therefore frames each event with that protocol's own websockets state
machine (so extensions, close state and ordering stay its business) and writes everything queued in one step
of the event loop with a single `transport.write`, scheduled for the end of that step. Anything that uvicorn
itself writes (a pong, a close frame) takes the queued frames along first, in order. How the protocol is reached
is `rtflow.sim.uvicorn_glue`'s business; this module decides when to write.

Under any other ASGI server the writer falls back to one `websocket.send` per frame.

A frame's `written` callback runs once the frame is on the socket (after the write of its batch): the event
log's `out` records are made then, so their time is when the event left, not when it was queued. Under load the
end of an event loop step can come tens of milliseconds after the queueing, and a client's time measurements
are compared with these records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from rtflow.sim.uvicorn_glue import SansIOWebSocket, abort_connection

__all__ = ["ASGISend", "FrameWriter", "dump", "dump_string"]

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
# Past this many queued bytes (a long audio response) the frames are written at once, so that the transport's
# flow control sees them and a slow reader pauses the session as it would with one write per frame.
_FLUSH_AT_BYTES = 64 * 1024

# One encoder for every event: `json.dumps` with separators builds a new encoder per call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def dump(event: dict[str, Any]) -> str:
    """Compact JSON for the wire."""
    return _compact_json(event)


def dump_string(text: str) -> str:
    """A JSON string, exactly as `dump` writes it inside an event."""
    return _compact_json(text)


class FrameWriter:
    """Sends one connection's text frames; `close` and `abort` end it after what was queued."""

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self._sansio = SansIOWebSocket.behind(send)
        self._flush_pending = False
        self._queued_bytes = 0
        self._written: list[Callable[[], None]] = []
        """The `written` callbacks of the frames queued since the last write, in order."""

    @property
    def coalescing(self) -> bool:
        """Whether frames are written in batches (uvicorn's sans-I/O protocol) rather than one ASGI send each."""
        return self._sansio is not None

    async def send_text(self, text: str, written: Callable[[], None] | None = None) -> None:
        """Queue one text frame; it is on the socket by the end of this step of the event loop, and `written`
        runs then."""
        sansio = self._sansio
        if sansio is None:
            await self._send({"type": "websocket.send", "text": text})
            if written is not None:
                written()
            return
        if not sansio.writable:
            # The client reads slower than we write: honour the transport's flow control like uvicorn's send.
            self.flush()
            await sansio.wait_writable()
        if sansio.closed:
            raise ConnectionResetError("the client has gone away")
        data = text.encode()
        sansio.queue_text(data)
        if written is not None:
            self._written.append(written)
        self._queued_bytes += len(data)
        if self._queued_bytes >= _FLUSH_AT_BYTES:
            self.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued frame now (one `transport.write`)."""
        self._flush_pending = False
        self._queued_bytes = 0
        if self._sansio is not None:
            self._sansio.write_queued()
        written, self._written = self._written, []
        for callback in written:
            callback()

    async def close(self, code: int, reason: str) -> None:
        """A close frame after everything queued."""
        self.flush()
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> bool:
        """Drop the TCP connection without a close frame (after writing what is queued); False if unsupported."""
        self.flush()
        return abort_connection(self._send)
