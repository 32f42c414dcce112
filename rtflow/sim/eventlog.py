"""The record of every event in and out: in memory (`SimServer.events`) and/or a JSONL file.

Each record: `ts` (Unix seconds: for an `out` record on a WebSocket, when the frame was written to the socket; for
an `in` record, when the server read it), `conn` (connection id, `rt-N`, `chat-N` or `speech-N`), `dir` (`in` | `out` |
`state`), `endpoint` (`realtime` | `chat` | `speech`), `type` (the event type; `<malformed>` for a frame that is not
JSON) and `payload`. A speech record's `out` payload gives the audio's byte count, never the audio.
When neither is on, `enabled` is False and the server does not even build the records.

`state` records are not on the wire; they say what the simulator itself holds. One kind exists:
`response.context`, written for every Realtime response that starts (before its `response.created`), with
`payload` `{"response_id": ..., "items": [{"id", "role", "type", "text"}, ...]}`: the conversation items the
response is answered from, in order (for an out-of-band response, its `input`). `text` is a message's text or
audio transcript, after any `conversation.item.truncate`; a function call's arguments; a function call output's
output. `role` is null for function items. This is how a test proves what the next turn's history held.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["EventLog"]


class EventLog:
    """Appends event records to a list, a file, or both."""

    def __init__(self, path: Path | None, keep: bool) -> None:
        self.events: list[dict[str, Any]] = []
        self._keep = keep
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path is not None else None
        self.enabled = keep or self._file is not None

    def record(
        self, conn: str, direction: str, endpoint: str, event_type: str, payload: Any, ts: float | None = None
    ) -> None:
        """Add one record, made now unless `ts` says when it happened."""
        entry = _entry(conn, direction, endpoint, event_type, time.time() if ts is None else ts)
        entry["payload"] = payload
        if self._keep:
            self.events.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def record_text(self, conn: str, direction: str, endpoint: str, event_type: str, text: str, ts: float) -> None:
        """Add one record whose payload is already JSON (a frame as it went out): the file gets the text as it is,
        and it is parsed only for the records kept in memory."""
        entry = _entry(conn, direction, endpoint, event_type, ts)
        if self._file is not None:
            head = json.dumps(entry, separators=(",", ":"))
            self._file.write(f'{head[:-1]},"payload":{text}}}\n')
        if self._keep:
            entry["payload"] = json.loads(text)
            self.events.append(entry)

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _entry(conn: str, direction: str, endpoint: str, event_type: str, ts: float) -> dict[str, Any]:
    """A record without its payload."""
    return {"ts": ts, "conn": conn, "dir": direction, "endpoint": endpoint, "type": event_type}
