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

The writer also makes the event log's `out` records (`record`), each once its frame is on the socket: their time
is when the batch was written, not when the frame was queued (under load the end of an event loop step comes
tens of milliseconds after the queueing, and a client's time measurements are compared with these records),
and a close is recorded after the frames that went before it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from rtflow.sim.uvicorn_glue import SansIOWebSocket, abort_connection

if TYPE_CHECKING:
    from rtflow.sim.runtime import SimRuntime

__all__ = ["MALFORMED", "ASGISend", "DeltaHead", "FrameRecord", "FrameWriter", "dump", "dump_string", "frame_recorder"]

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
FrameRecord = Callable[[str, str, float], None]
"""`(event type, the frame's JSON text, when it was written)`: the event log's `out` record of one frame."""
MALFORMED = "<malformed>"
"""The event type recorded for a frame that is not JSON (the `malformed` fault): its payload is the text."""


class DeltaHead(NamedTuple):
    """The encoded start of a delta event (up to its `delta` value), and its type."""

    event_type: str
    text: str


def frame_recorder(runtime: SimRuntime, conn_id: str, endpoint: str) -> FrameRecord | None:
    """The `out` records of one connection's frames, or None when the event log is off."""
    log = runtime.log
    if not log.enabled:
        return None

    def record(event_type: str, text: str, ts: float) -> None:
        if event_type == MALFORMED:
            log.record(conn_id, "out", endpoint, event_type, text, ts)
        else:
            log.record_text(conn_id, "out", endpoint, event_type, text, ts)

    return record


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

    def __init__(self, send: ASGISend, record: FrameRecord | None = None) -> None:
        self._send = send
        self._sansio = SansIOWebSocket.behind(send)
        self._flush_pending = False
        self._queued_bytes = 0
        self._record = record
        self._unrecorded: list[tuple[str, str]] = []
        """(event type, text) of the frames queued since the last write, in order, when frames are recorded."""

    @property
    def coalescing(self) -> bool:
        """Whether frames are written in batches (uvicorn's sans-I/O protocol) rather than one ASGI send each."""
        return self._sansio is not None

    async def send_text(self, text: str, event_type: str) -> None:
        """Queue one text frame (an event of `event_type`); it is on the socket, and recorded, by the end of this
        step of the event loop."""
        sansio = self._sansio
        if sansio is None:
            await self._send({"type": "websocket.send", "text": text})
            self._recorded([(event_type, text)])
            return
        if not sansio.writable:
            # The client reads slower than we write: honour the transport's flow control like uvicorn's send.
            self.flush()
            await sansio.wait_writable()
        if sansio.closed:
            raise ConnectionResetError("the client has gone away")
        data = text.encode()
        sansio.queue_text(data)
        if self._record is not None:
            self._unrecorded.append((event_type, text))
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
        if self._unrecorded:
            written, self._unrecorded = self._unrecorded, []
            self._recorded(written)

    def _recorded(self, frames: list[tuple[str, str]]) -> None:
        """Record frames just written, all at the time of their write."""
        if self._record is not None:
            now = time.time()
            for event_type, text in frames:
                self._record(event_type, text, now)

    async def close(self, code: int, reason: str) -> None:
        """A close frame after everything queued."""
        self.flush()
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
        self._recorded([("<close>", dump({"code": code, "reason": reason}))])

    def abort(self) -> bool:
        """Drop the TCP connection without a close frame (after writing what is queued); False if unsupported."""
        self.flush()
        aborted = abort_connection(self._send)
        if aborted:
            self._recorded([("<close>", dump({"code": 1006, "reason": "aborted"}))])
        return aborted
