"""The run's one writer: stores every turn record the moment it is handed over, off the event loop.

A thread drains a queue. Each time it wakes it commits everything that is waiting in ONE transaction (group
commit): at a few turns per second every record gets a commit of its own within a millisecond; at thousands per
second the commits are shared, and the event loop never waits for SQLite. Records of the same node are written
in the order they were handed over, so a turn's `pending` record is always replaced by its verdict.

A failure to write (disk full, a locked file) is kept and raised by the next `put` or by `close`, so a run never
loses records silently. `close` writes whatever is still queued before it returns.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType

from rtflow.errors import StoreError
from rtflow.records import TurnRecord
from rtflow.report import JsonlWriter
from rtflow.store import RunStore

__all__ = ["TurnWriter"]

_STOP = None


class TurnWriter:
    """Writes turn records to the run store and, for final records, to a streamed JSONL file."""

    def __init__(self, store: RunStore | None, jsonl: JsonlWriter | None) -> None:
        self._store = store
        self._jsonl = jsonl
        self._queue: queue.SimpleQueue[TurnRecord | None] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="rtflow-writer", daemon=True)
        self._thread.start()

    def put(self, record: TurnRecord) -> None:
        """Queue `record` for writing; raises the writer's failure if an earlier write failed."""
        self._raise_failure()
        self._queue.put(record)

    def close(self) -> None:
        """Write everything queued, stop the thread, and raise a write failure if there was one."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_failure()

    def __enter__(self) -> TurnWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            if isinstance(failure, StoreError):
                raise failure
            raise StoreError(f"writing turn records failed: {type(failure).__name__}: {failure}") from failure

    def _drain(self) -> None:
        stopping = False
        while not stopping:
            batch: list[TurnRecord] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch and self._failure is None:
                try:
                    self._write(batch)
                except BaseException as exc:  # kept for the event loop's side: this thread has nobody to tell
                    self._failure = exc

    def _write(self, batch: list[TurnRecord]) -> None:
        if self._store is not None:
            self._store.save_turns(batch)
        if self._jsonl is not None:
            for record in batch:
                if record.status != "pending":  # one line per turn, once it is final
                    self._jsonl.write(record)
