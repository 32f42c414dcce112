"""The run store: every run and every finished turn, in one SQLite file.

The default file is `.rtflow/rtflow.db` under the current folder; `RTFLOW_DB` or an explicit path moves it.
The run's writer (`rtflow.runner.writer`) saves turns within a moment of their finishing (upserts, several committed
together when they finish together), so a crash or Ctrl-C loses nothing that finished, and other processes
(`rtflow show`, a report) read the file while the run goes on: it is in WAL mode, so readers never block the
writer.

A turn is kept whole as JSON (the `TurnRecord`), beside the columns that queries filter on. The schema is
versioned with `PRAGMA user_version`; `_MIGRATIONS[n]` takes a file from version n to n + 1, so an empty file
and a file from any older rtflow both end up current. The version is read and the migrations applied inside one
`BEGIN IMMEDIATE` transaction, so processes opening a new file at the same moment take turns: the first
creates the schema, the others find it made.

Reads use only what the first schema has (the `record` columns), so `read_only=True` (what `runs`, `show` and
`export` use) reads a file of any version up to this one without migrating it, and reads a file it may not
write: a write-protected file or folder, opened `mode=ro` (and `immutable`, when not even SQLite's shared-memory
file can be made there: in a folder no one can write, no writer can change the file either).

`claim_run` holds a run for one process (`rtflow.results.run_claim`); `check_resume` refuses a resume that would
send a run's remaining turns somewhere else than its first ones (simulated vs real, or another endpoint).

One `RunStore` may be shared by threads: a lock serialises use of its single connection.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from rtflow.errors import FlowError, RunNotFoundError, StoreError
from rtflow.results.records import RunRecord, RunStatus, TurnRecord
from rtflow.results.run_claim import RunClaim, lock_path_for
from rtflow.results.summary import RunSummary

__all__ = ["DEFAULT_DB_PATH", "SCHEMA_VERSION", "RunStore", "default_db_path"]

DEFAULT_DB_PATH = Path(".rtflow") / "rtflow.db"
LATEST = "latest"
_OPEN_TIMEOUT_S = 30.0
"""How long opening (or writing) waits for other processes that hold the file."""

_MIGRATIONS: Sequence[Sequence[str]] = (
    # 0 -> 1: runs, turns and assertions.
    (
        """CREATE TABLE runs (
            run_id     TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            ended_at   REAL,
            status     TEXT NOT NULL,
            flow_path  TEXT,
            record     TEXT NOT NULL
        )""",
        "CREATE INDEX runs_started ON runs (started_at)",
        """CREATE TABLE turns (
            run_id          TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            node_id         TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            thread_id       TEXT NOT NULL,
            turn_index      INTEGER NOT NULL,
            provider        TEXT NOT NULL,
            status          TEXT NOT NULL,
            record          TEXT NOT NULL,
            PRIMARY KEY (run_id, node_id)
        )""",
        "CREATE INDEX turns_status ON turns (run_id, status)",
        "CREATE INDEX turns_conversation ON turns (run_id, conversation_id, turn_index)",
        "CREATE INDEX turns_thread ON turns (run_id, thread_id)",
        "CREATE INDEX turns_provider ON turns (run_id, provider)",
        """CREATE TABLE assertions (
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
        )""",
        "CREATE INDEX assertions_metric ON assertions (run_id, metric)",
    ),
    # 1 -> 2: whether a run was simulated, and where its providers' calls went, as columns to filter on. Runs
    # stored before have `simulated` in their record already; their endpoints were never kept.
    (
        "ALTER TABLE runs ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN endpoints TEXT NOT NULL DEFAULT '{}'",
        "UPDATE runs SET simulated = coalesce(json_extract(record, '$.simulated'), 0)",
    ),
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
    """Runs and turns in one SQLite file. Usable as a context manager; `close` when done.

    `read_only=True` never creates, migrates or writes the file; a missing (or still empty) file reads as an
    empty store."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only:
            self._connection = self._open_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {exc}") from exc
        with self._translate("open"):
            # check_same_thread=False: worker threads take turns through self._lock, never at once.
            self._connection = sqlite3.connect(
                self.path, timeout=_OPEN_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
        try:
            with self._translate("open"):
                self._connection.execute("PRAGMA foreign_keys = ON")
                self._use_wal()
                # NORMAL in WAL mode still survives a process crash; only power loss may drop the last commits.
                self._connection.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
        except StoreError:
            self._connection.close()
            raise

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            return self._empty()
        uri = self.path.absolute().as_uri() + "?mode=ro"
        with self._translate("open"):
            try:
                connection = self._connect_read_only(uri)
            except sqlite3.OperationalError as exc:
                # A WAL file is read through a shared-memory file beside it; where none can be made (a folder
                # no one may write), only an immutable open reads it, and no writer can change it there.
                if not exc.sqlite_errorname.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
                    raise
                connection = self._connect_read_only(uri + "&immutable=1")
        try:
            with self._translate("open"):
                version = self._version(connection)
            if version > SCHEMA_VERSION:
                raise self._newer(version)
        except StoreError:
            connection.close()
            raise
        if version == 0:  # a file with no schema yet holds no runs
            connection.close()
            return self._empty()
        return connection

    def _connect_read_only(self, uri: str) -> sqlite3.Connection:
        connection = sqlite3.connect(
            uri, uri=True, timeout=_OPEN_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy: read now
        except BaseException:
            connection.close()
            raise
        return connection

    def _empty(self) -> sqlite3.Connection:
        """An empty store in memory, at the current schema: what a file that does not exist yet reads as."""
        connection = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        for statements in _MIGRATIONS:
            for statement in statements:
                connection.execute(statement)
        return connection

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
        if self.read_only:
            raise StoreError(f"{self.path}: cannot {action} the run store: it was opened read-only")
        with self._lock, self._translate(action):
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @staticmethod
    def _version(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])

    def _newer(self, version: int) -> StoreError:
        return StoreError(
            f"{self.path}: the run store has schema version {version}, newer than this rtflow knows "
            f"({SCHEMA_VERSION}); upgrade rtflow or use another file (RTFLOW_DB)"
        )

    def _use_wal(self) -> None:
        """Put the file in WAL mode. Switching takes the file for itself, and SQLite does not wait for that (its
        busy timeout is not used) when other processes open a new file at the same moment: so wait here."""
        deadline = time.monotonic() + _OPEN_TIMEOUT_S
        while True:
            try:
                self._connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.005, 0.02))

    def _migrate(self) -> None:
        connection = self._connection
        version = self._version(connection)
        if version == SCHEMA_VERSION:  # the common case takes no write lock
            return
        if version > SCHEMA_VERSION:
            raise self._newer(version)
        # Read again under the write lock: another process may have migrated the file since.
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(connection)
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        with self._lock, self._translate("read"):
            return self._version(self._connection)

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
                """INSERT INTO runs (run_id, started_at, ended_at, status, flow_path, simulated, endpoints, record)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at,
                       ended_at = excluded.ended_at, status = excluded.status, flow_path = excluded.flow_path,
                       simulated = excluded.simulated, endpoints = excluded.endpoints, record = excluded.record""",
                (
                    run.run_id,
                    run.started_at,
                    run.ended_at,
                    run.status,
                    run.flow_path,
                    int(run.simulated),
                    json.dumps(run.endpoints, sort_keys=True),
                    run.model_dump_json(),
                ),
            )

    def claim_run(self, run_id: str) -> RunClaim:
        """A claim on run `run_id` (or `latest`) for this process, to hold while the run goes:
        `with store.claim_run(run_id): ...`. Entering it raises `StoreError` naming the run and the other
        process's pid when another process holds it; a process that dies lets go of it at once."""
        resolved = self.resolve_run_id(run_id)
        return RunClaim(lock_path_for(self.path, resolved), resolved)

    def check_resume(
        self, run_id: str, *, simulated: bool, endpoints: Mapping[str, str], force: bool = False
    ) -> list[str]:
        """Whether run `run_id` (or `latest`) may be resumed with `simulated` and `endpoints` (provider label ->
        base URL, `sim` for simulated ones): the changes that would bring, one sentence each.

        Unless `force`, any change is refused with a `FlowError` naming them: one run's turns would otherwise
        mix answers from the simulator and a real API, or from two servers. Forced, the changes are returned for
        the caller to log."""
        run = self.get_run(run_id)
        changes = run.resume_changes(simulated=simulated, endpoints=endpoints)
        if changes and not force:
            raise FlowError(
                f"refusing to resume run {run.run_id}: {'; '.join(changes)}. Resume it as it was started"
                f"{' (with --sim)' if run.simulated else ''}, or pass --force (force=True) to mix them in one run"
            )
        return changes

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

    def baseline_run_id(self, baseline: str, *, flow_path: str | None, before: RunRecord | None = None) -> str:
        """The run to compare with: `baseline` itself, or for `latest` the last run of the same flow started before
        `before` (None: the last of all). Another flow's run shares no test with this one, and a regression gate
        against it would pass whatever happened, so `latest` never means one.

        The same flow is the same file (`flow_path`, as runs record it: resolved), or, when no run has that path
        (a store copied from another machine or workspace, or merged), a file of the same name; a run built in
        code (no flow path) compares with runs built in code."""
        if baseline != LATEST:
            return self.resolve_run_id(baseline)
        # Earlier than `before` in the order `list_runs` gives (newest first: started_at, then run_id).
        started, run_id = (before.started_at, before.run_id) if before is not None else (float("inf"), "")
        earlier = "(started_at < ? OR (started_at = ? AND run_id < ?)) ORDER BY started_at DESC, run_id DESC LIMIT 1"
        if flow_path is None:
            candidates: list[tuple[str, tuple[str, ...]]] = [("flow_path IS NULL", ())]
        else:
            name = Path(flow_path).name
            candidates = [
                ("flow_path = ?", (flow_path,)),
                ("flow_path LIKE ? ESCAPE '!'", ("%/" + _like_literal(name),)),
            ]
        for where, parameters in candidates:
            with self._lock, self._translate("read"):
                row = self._connection.execute(
                    f"SELECT run_id FROM runs WHERE {where} AND {earlier}",
                    (*parameters, started, started, run_id),
                ).fetchone()
            if row is not None:
                return str(row[0])
        which = "a flow built in code" if flow_path is None else flow_path
        raise RunNotFoundError(
            f"{self.path}: no earlier run of {which} to compare with (as `latest`); name the run to compare with "
            "(`rtflow runs` lists them)"
        )

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

    def count_turns(self, run_id: str) -> int:
        """How many turns of run `run_id` are stored (none is parsed: a cheap question to ask often)."""
        with self._lock, self._translate("read"):
            row = self._connection.execute("SELECT COUNT(*) FROM turns WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0])

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


def _like_literal(text: str) -> str:
    """`text` inside a LIKE pattern with `ESCAPE '!'`: its wildcards (and `!`) matched as themselves."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
