"""The run store: every run and every finished turn, in one SQLite file.

The default file is `.rtflow/rtflow.db` under the current folder; `RTFLOW_DB` or an explicit path moves it.
The run's writer (`rtflow.runner.writer`) saves turns within a moment of their finishing (upserts, several committed
together when they finish together), so a crash or Ctrl-C loses nothing that finished, and other processes
(`rtflow show`, a report) read the file while the run goes on: it is in WAL mode, so readers never block the
writer.

A turn is kept whole as JSON (the `TurnRecord`), beside the columns that queries filter on. The schema is
versioned with `PRAGMA user_version`; `_MIGRATIONS[n]` takes a file from version n to n + 1, so an empty file
and a file from any older rtflow both end up current.

One `RunStore` may be shared by threads: a lock serialises use of its single connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from rtflow.errors import RunNotFoundError, StoreError
from rtflow.results.records import RunRecord, RunStatus, TurnRecord
from rtflow.results.summary import RunSummary

__all__ = ["DEFAULT_DB_PATH", "SCHEMA_VERSION", "RunStore", "default_db_path"]

DEFAULT_DB_PATH = Path(".rtflow") / "rtflow.db"
LATEST = "latest"

_MIGRATIONS: Sequence[str] = (
    # 0 -> 1: runs, turns and assertions.
    """
    CREATE TABLE runs (
        run_id     TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at   REAL,
        status     TEXT NOT NULL,
        flow_path  TEXT,
        record     TEXT NOT NULL
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE turns (
        run_id          TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        node_id         TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        thread_id       TEXT NOT NULL,
        turn_index      INTEGER NOT NULL,
        provider        TEXT NOT NULL,
        status          TEXT NOT NULL,
        record          TEXT NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE INDEX turns_status ON turns (run_id, status);
    CREATE INDEX turns_conversation ON turns (run_id, conversation_id, turn_index);
    CREATE INDEX turns_thread ON turns (run_id, thread_id);
    CREATE INDEX turns_provider ON turns (run_id, provider);
    CREATE TABLE assertions (
        run_id   TEXT NOT NULL,
        node_id  TEXT NOT NULL,
        position INTEGER NOT NULL,
        type     TEXT NOT NULL,
        metric   TEXT,
        passed   INTEGER NOT NULL,
        score    REAL NOT NULL,
        weight   REAL NOT NULL,
        error    TEXT,
        PRIMARY KEY (run_id, node_id, position),
        FOREIGN KEY (run_id, node_id) REFERENCES turns (run_id, node_id) ON DELETE CASCADE
    );
    CREATE INDEX assertions_metric ON assertions (run_id, metric);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this rtflow writes."""

_NOT_SUMMARISED = (
    "$.vars",
    "$.prompt_messages",
    "$.request_messages",
    "$.assertions",
    "$.output.tool_calls",
    "$.output.audio",
)
"""JSON paths of a stored turn that no summary figure reads; each has a default, so what is left still validates
as a `TurnRecord`."""


def default_db_path() -> Path:
    """`RTFLOW_DB` when set, else `.rtflow/rtflow.db` under the current folder."""
    configured = os.environ.get("RTFLOW_DB")
    return Path(configured) if configured else DEFAULT_DB_PATH


class RunStore:
    """Runs and turns in one SQLite file. Usable as a context manager; `close` when done."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {exc}") from exc
        with self._translate("open"):
            # check_same_thread=False: worker threads take turns through self._lock, never at once.
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            with self._translate("open"):
                self._connection.execute("PRAGMA foreign_keys = ON")
                self._connection.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode still survives a process crash; only power loss may drop the last commits.
                self._connection.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
        except StoreError:
            self._connection.close()
            raise

    # ------------------------------------------------------------------------------------------ housekeeping

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """sqlite3's errors become `StoreError`s naming the file, here, where they enter."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot {action} the run store: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: run store failure while trying to {action}: {exc}") from exc

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._translate(action):
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _migrate(self) -> None:
        version = int(self._connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the run store has schema version {version}, newer than this rtflow knows "
                f"({SCHEMA_VERSION}); upgrade rtflow or use another file (RTFLOW_DB)"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            script = _MIGRATIONS[target - 1]
            # executescript commits on its own, so the version bump rides in the same script.
            self._connection.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;")

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._lock, self._translate("read"):
            return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ writes

    def start_run(self, run: RunRecord) -> None:
        """Record a run (again, for a resumed one: its record is replaced, its turns kept)."""
        with self._transaction("write") as connection:
            connection.execute(
                """INSERT INTO runs (run_id, started_at, ended_at, status, flow_path, record)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at,
                       ended_at = excluded.ended_at, status = excluded.status,
                       flow_path = excluded.flow_path, record = excluded.record""",
                (run.run_id, run.started_at, run.ended_at, run.status, run.flow_path, run.model_dump_json()),
            )

    def save_turns(self, turns: Sequence[TurnRecord]) -> None:
        """Insert or replace turns (keyed by run and node) in one transaction, committed before this returns; in
        order, so a later record of the same node wins. The run's writer commits whatever finished since its last
        commit this way."""
        if not turns:
            return
        with self._transaction("write") as connection:
            for run_id in {turn.run_id for turn in turns}:
                if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                    raise StoreError(f"{self.path}: cannot save turns: no run {run_id!r} was started")
            for turn in turns:
                self._upsert_turn(connection, turn)

    @staticmethod
    def _upsert_turn(connection: sqlite3.Connection, turn: TurnRecord) -> None:
        connection.execute(
            """INSERT INTO turns (run_id, node_id, conversation_id, thread_id, turn_index, provider, status,
                                  record)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (run_id, node_id) DO UPDATE SET conversation_id = excluded.conversation_id,
                   thread_id = excluded.thread_id, turn_index = excluded.turn_index,
                   provider = excluded.provider, status = excluded.status, record = excluded.record""",
            (
                turn.run_id,
                turn.node_id,
                turn.conversation_id,
                turn.thread_id,
                turn.turn_index,
                turn.provider,
                turn.status,
                turn.model_dump_json(),
            ),
        )
        connection.execute("DELETE FROM assertions WHERE run_id = ? AND node_id = ?", (turn.run_id, turn.node_id))
        connection.executemany(
            """INSERT INTO assertions (run_id, node_id, position, type, metric, passed, score, weight, error)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    turn.run_id,
                    turn.node_id,
                    position,
                    result.type,
                    result.metric,
                    int(result.passed),
                    result.score,
                    result.weight,
                    result.error,
                )
                for position, result in enumerate(turn.assertions)
            ],
        )

    def finish_run(self, run_id: str, status: RunStatus, ended_at: float) -> None:
        """Mark a run as ended with `status`."""
        with self._transaction("write") as connection:
            row = connection.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: no run {run_id!r} to finish")
            record = self._run_from_json(row[0]).model_copy(update={"status": status, "ended_at": ended_at})
            connection.execute(
                "UPDATE runs SET status = ?, ended_at = ?, record = ? WHERE run_id = ?",
                (status, ended_at, record.model_dump_json(), run_id),
            )

    # ------------------------------------------------------------------------------------------------- reads

    def _run_from_json(self, text: str) -> RunRecord:
        try:
            return RunRecord.model_validate_json(text)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: a stored run record does not read back: {exc}") from exc

    def _turn_from_json(self, text: str) -> TurnRecord:
        try:
            return TurnRecord.model_validate_json(text)
        except ValidationError as exc:
            raise StoreError(f"{self.path}: a stored turn record does not read back: {exc}") from exc

    def get_run(self, run_id: str) -> RunRecord:
        """The run `run_id` (or `latest`); `StoreError` naming the file when there is no such run."""
        resolved = self.resolve_run_id(run_id)
        with self._lock, self._translate("read"):
            row = self._connection.execute("SELECT record FROM runs WHERE run_id = ?", (resolved,)).fetchone()
        if row is None:
            known = ", ".join(run.run_id for run in self.list_runs(3)) or "none yet"
            raise RunNotFoundError(f"{self.path}: no run {run_id!r} (latest runs: {known}; see `rtflow runs`)")
        return self._run_from_json(row[0])

    def list_runs(self, limit: int | None = 20) -> list[RunRecord]:
        """The most recent runs first, at most `limit` of them (all with None)."""
        with self._lock, self._translate("read"):
            rows = self._connection.execute(
                "SELECT record FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [self._run_from_json(row[0]) for row in rows]

    def latest_run_id(self) -> str | None:
        """The id of the run started last, or None when the store holds none."""
        with self._lock, self._translate("read"):
            row = self._connection.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def resolve_run_id(self, run_id: str) -> str:
        """`run_id` itself, or the latest run's id for `latest`."""
        if run_id != LATEST:
            return run_id
        latest = self.latest_run_id()
        if latest is None:
            raise RunNotFoundError(f"{self.path}: the run store holds no runs yet")
        return latest

    def turns(self, run_id: str, *, thread: str | None = None) -> list[TurnRecord]:
        """The run's turns, by conversation then turn; only thread `thread`'s when given."""
        resolved = self.resolve_run_id(run_id)
        query = "SELECT record FROM turns WHERE run_id = ?"
        parameters: list[str] = [resolved]
        if thread is not None:
            query += " AND thread_id = ?"
            parameters.append(thread)
        query += " ORDER BY conversation_id, turn_index, node_id"
        with self._lock, self._translate("read"):
            rows = self._connection.execute(query, parameters).fetchall()
        return [self._turn_from_json(row[0]) for row in rows]

    def summary(self, run_id: str) -> RunSummary:
        """The `RunSummary` of run `run_id` (or `latest`) from its stored turns.

        The turns are read without their messages and variables, which no figure needs (SQLite drops them before
        they are parsed), so listing the summaries of many large runs stays quick."""
        run = self.get_run(run_id)
        with self._lock, self._translate("read"):
            rows = self._connection.execute(
                f"SELECT json_remove(record, {', '.join('?' * len(_NOT_SUMMARISED))}) FROM turns WHERE run_id = ?"
                " ORDER BY conversation_id, turn_index, node_id",
                (*_NOT_SUMMARISED, run.run_id),
            ).fetchall()
        return RunSummary.of(run, (self._turn_from_json(row[0]) for row in rows))
