"""The SQLite run store: durable turn-by-turn writes, upserts, schema versions and clear errors."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from results_samples import RUN_ID, T0, make_run, make_turns

from rtflow.errors import FlowError, StoreError
from rtflow.results.store import SCHEMA_VERSION, RunStore, default_db_path


def test_turns_are_readable_from_another_connection_as_soon_as_saved(tmp_path: Path) -> None:
    """Each saved turn is visible to a second, independent connection before the next one is written."""
    db = tmp_path / "runs.db"
    turns = make_turns()
    with RunStore(db) as writer, RunStore(db) as reader:
        writer.start_run(make_run(status="running", ended_at=None))
        for count, turn in enumerate(turns, start=1):
            writer.save_turns([turn])
            seen = reader.turns(RUN_ID)
            assert len(seen) == count
            assert turn in seen
        raw = sqlite3.connect(db)
        try:
            assert raw.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == len(turns)
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            raw.close()


def test_saving_the_same_node_twice_keeps_one_row(tmp_path: Path) -> None:
    """An upsert replaces the turn (and its assertion rows) instead of adding a second one."""
    with RunStore(tmp_path / "runs.db") as store:
        store.start_run(make_run())
        first = make_turns()[0]
        store.save_turns([first.model_copy(update={"status": "pending", "assertions": []})])
        store.save_turns([first])
        stored = store.turns(RUN_ID)
        assert stored == [first]
        assert store.summary(RUN_ID).status_counts() == {"passed": 1, "not_run": 4}
        raw = sqlite3.connect(tmp_path / "runs.db")
        try:
            assert raw.execute("SELECT COUNT(*) FROM assertions").fetchone()[0] == len(first.assertions)
        finally:
            raw.close()


def test_run_lifecycle_and_queries(tmp_path: Path) -> None:
    """Runs are listed newest first, `latest` resolves, finish_run records status, and threads filter turns."""
    with RunStore(tmp_path / "runs.db") as store:
        assert store.latest_run_id() is None
        older = make_run(run_id="run-old", started_at=T0 - 100, status="running", ended_at=None)
        store.start_run(older)
        store.start_run(make_run(status="running", ended_at=None))
        for turn in make_turns():
            store.save_turns([turn])
        store.finish_run(RUN_ID, "interrupted", T0 + 9)
        assert [run.run_id for run in store.list_runs(10)] == [RUN_ID, "run-old"]
        assert store.latest_run_id() == RUN_ID
        latest = store.get_run("latest")
        assert (latest.status, latest.ended_at) == ("interrupted", T0 + 9)
        weather = store.turns("latest", thread="weather")
        assert [(turn.turn_index, turn.status) for turn in weather] == [(0, "error"), (1, "skipped")]
        assert store.summary(RUN_ID).status_counts() == {"passed": 2, "failed": 1, "error": 1, "skipped": 1}
        assert store.turns("run-old") == []


def test_schema_is_created_in_an_empty_file_and_versioned(tmp_path: Path) -> None:
    """An empty file is migrated to the current schema version and reopening it changes nothing."""
    db = tmp_path / "empty.db"
    db.touch()
    with RunStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION >= 1
        store.start_run(make_run())
    with RunStore(db) as reopened:
        assert reopened.schema_version == SCHEMA_VERSION
        assert reopened.get_run(RUN_ID) == make_run()
    raw = sqlite3.connect(db)
    try:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()
    assert {"runs", "turns", "assertions"} <= tables


def test_a_file_that_is_not_a_database_gives_a_store_error_naming_it(tmp_path: Path) -> None:
    """Opening a text file as the store fails with StoreError naming the file, not a sqlite3 exception."""
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError) as caught:
        RunStore(bogus)
    assert str(bogus) in str(caught.value)
    assert "not a database" in str(caught.value)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer rtflow (higher user_version) is refused with a StoreError that says so."""
    db = tmp_path / "future.db"
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(db)


def test_missing_runs_and_turns_without_a_run_are_store_errors(tmp_path: Path) -> None:
    """Asking for an unknown run, `latest` in an empty store, or saving a turn of an unstarted run is a StoreError."""
    with RunStore(tmp_path / "runs.db") as store:
        with pytest.raises(StoreError, match="no runs yet"):
            store.get_run("latest")
        with pytest.raises(StoreError, match="no run 'nope'"):
            store.get_run("nope")
        with pytest.raises(StoreError, match="no run"):
            store.save_turns([make_turns()[0]])


def test_rtflow_db_environment_variable_moves_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RTFLOW_DB names the default file, and the store creates its folder."""
    target = tmp_path / "elsewhere" / "store.db"
    monkeypatch.setenv("RTFLOW_DB", str(target))
    assert default_db_path() == target
    with RunStore() as store:
        store.start_run(make_run())
    assert target.is_file()


@pytest.mark.anyio
async def test_saves_from_worker_threads_are_all_kept(tmp_path: Path) -> None:
    """Many turns saved at once through anyio worker threads all land, each exactly once."""
    base = make_turns()[0]
    turns = [
        base.model_copy(
            update={
                "node_id": f"realtime/t{index}/1",
                "conversation_id": f"realtime/t{index}",
                "thread_id": f"t{index}",
            }
        )
        for index in range(60)
    ]
    with RunStore(tmp_path / "runs.db") as store:
        store.start_run(make_run())
        async with anyio.create_task_group() as task_group:
            for turn in turns:
                task_group.start_soon(anyio.to_thread.run_sync, store.save_turns, [turn])
        assert sorted(turn.node_id for turn in store.turns(RUN_ID)) == sorted(turn.node_id for turn in turns)


SCHEMA_V1 = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL, status TEXT NOT NULL,
                   flow_path TEXT, record TEXT NOT NULL);
CREATE INDEX runs_started ON runs (started_at);
CREATE TABLE turns (run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, node_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL, thread_id TEXT NOT NULL, turn_index INTEGER NOT NULL,
                    provider TEXT NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL,
                    PRIMARY KEY (run_id, node_id));
CREATE TABLE assertions (run_id TEXT NOT NULL, node_id TEXT NOT NULL, position INTEGER NOT NULL,
                         type TEXT NOT NULL, metric TEXT, passed INTEGER NOT NULL, score REAL NOT NULL,
                         weight REAL NOT NULL, error TEXT, PRIMARY KEY (run_id, node_id, position),
                         FOREIGN KEY (run_id, node_id) REFERENCES turns (run_id, node_id) ON DELETE CASCADE);
PRAGMA user_version = 1;
"""


def write_version_1_store(db: Path) -> None:
    """A run store as rtflow wrote it at schema version 1: a simulated and a real run, records without endpoints."""
    raw = sqlite3.connect(db)
    try:
        raw.executescript(SCHEMA_V1)
        for run in (make_run(), make_run(run_id="real-run", simulated=False)):
            record = run.model_dump(mode="json")
            del record["endpoints"]  # version 1 records had no such field
            raw.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (run.run_id, run.started_at, run.ended_at, run.status, run.flow_path, json.dumps(record)),
            )
        raw.commit()
    finally:
        raw.close()


def test_a_version_1_store_is_migrated_with_simulated_and_endpoints_columns(tmp_path: Path) -> None:
    """Opening a version-1 file adds the `simulated` and `endpoints` columns, filled from the old records."""
    db = tmp_path / "v1.db"
    write_version_1_store(db)
    with RunStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert store.get_run(RUN_ID).endpoints == {}
        store.start_run(make_run(run_id="new-run", endpoints={"realtime": "https://api.openai.com/v1"}))
    raw = sqlite3.connect(db)
    try:
        rows = dict(raw.execute("SELECT run_id, simulated || ' ' || endpoints FROM runs").fetchall())
    finally:
        raw.close()
    assert rows == {
        RUN_ID: "1 {}",
        "real-run": "0 {}",
        "new-run": '1 {"realtime": "https://api.openai.com/v1"}',
    }


def test_a_resume_that_changes_simulated_or_an_endpoint_is_refused_unless_forced(tmp_path: Path) -> None:
    """check_resume names each change (simulated vs real, a provider's endpoint), refuses it, and allows it forced."""
    endpoints = {"realtime": "sim", "chat": "https://api.openai.com/v1"}
    with RunStore(tmp_path / "runs.db") as store:
        store.start_run(make_run(endpoints=endpoints))  # a simulated run
        assert store.check_resume("latest", simulated=True, endpoints=endpoints) == []
        assert store.check_resume(RUN_ID, simulated=True, endpoints={**endpoints, "added": "https://x"}) == []
        with pytest.raises(FlowError) as caught:
            store.check_resume("latest", simulated=False, endpoints=endpoints)
        message = str(caught.value)
        assert RUN_ID in message and "was simulated (--sim)" in message and "--force" in message
        assert caught.value.exit_code == 2
        moved = {**endpoints, "chat": "https://other.example/v1"}
        with pytest.raises(FlowError, match=r"provider 'chat' went to https://api\.openai\.com/v1 and would now go"):
            store.check_resume(RUN_ID, simulated=True, endpoints=moved)
        assert len(store.check_resume(RUN_ID, simulated=False, endpoints=moved, force=True)) == 2


def test_a_run_recorded_before_endpoints_is_checked_for_simulated_only(tmp_path: Path) -> None:
    """A migrated run has no endpoints on record: any endpoints pass, a change between simulated and real does not."""
    db = tmp_path / "v1.db"
    write_version_1_store(db)
    with RunStore(db) as store:
        assert store.check_resume("real-run", simulated=False, endpoints={"chat": "https://x"}) == []
        with pytest.raises(FlowError, match="went to the real endpoints and would now be simulated"):
            store.check_resume("real-run", simulated=True, endpoints={})


def test_a_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    """A second claim on a held run fails naming the run and this pid; after release it succeeds, and another
    run's claim never conflicts. The lock file goes with the claim."""
    with RunStore(tmp_path / "runs.db") as store:
        store.start_run(make_run())
        with store.claim_run("latest") as claim:
            assert claim.lock_path.is_file()
            with pytest.raises(StoreError) as caught:
                store.claim_run(RUN_ID).acquire()
            assert RUN_ID in str(caught.value) and f"pid {os.getpid()}" in str(caught.value)
            with store.claim_run("another-run"):
                pass
        assert not claim.lock_path.exists()
        with store.claim_run(RUN_ID):
            pass


def test_a_read_only_store_reads_without_writing_or_migrating(tmp_path: Path) -> None:
    """read_only=True reads a version-1 file as it is, reads a missing file as empty (creating nothing), and
    refuses writes with a StoreError that says why."""
    db = tmp_path / "v1.db"
    write_version_1_store(db)
    before = db.read_bytes()
    with RunStore(db, read_only=True) as store:
        assert store.schema_version == 1
        assert [run.run_id for run in store.list_runs()] == [RUN_ID, "real-run"]
        assert store.summary(RUN_ID).status_counts() == {"not_run": 5}
        with pytest.raises(StoreError, match="read-only"):
            store.start_run(make_run(run_id="x"))
    assert db.read_bytes() == before
    missing = tmp_path / "nowhere" / "rtflow.db"
    with RunStore(missing, read_only=True) as empty:
        assert empty.list_runs() == []
        with pytest.raises(StoreError, match="no runs yet"):
            empty.get_run("latest")
    assert not missing.parent.exists()
    future = tmp_path / "future.db"
    raw = sqlite3.connect(future)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(future, read_only=True)


def test_the_baseline_latest_is_the_last_earlier_run_of_the_same_flow(tmp_path: Path) -> None:
    """`latest` as a baseline: the same file's last run before the given one (ties on the start time ordered by
    run id, as `rtflow runs` lists them); a file of the same name when no run has that path (a store copied from
    another workspace); runs built in code among themselves; an error naming the flow when there is none."""
    from rtflow.errors import RunNotFoundError

    here, there = "/work/a/flows/chat.yaml", "/ci/builds/1234/flows/chat.yaml"
    runs = [
        make_run(run_id="r1", flow_path=here, started_at=T0),
        make_run(run_id="r2", flow_path="/work/a/flows/other.yaml", started_at=T0 + 1),
        make_run(run_id="r3", flow_path=None, started_at=T0 + 2),
        make_run(run_id="r4", flow_path=None, started_at=T0 + 3),
        make_run(run_id="r5", flow_path=here, started_at=T0 + 3),
        make_run(run_id="r6", flow_path=here, started_at=T0 + 3),
    ]
    with RunStore(tmp_path / "runs.db") as store:
        for run in runs:
            store.start_run(run)
        assert store.baseline_run_id("latest", flow_path=here) == "r6"  # before a new run: the last of the file
        assert store.baseline_run_id("latest", flow_path=here, before=runs[5]) == "r5"  # same start time: by id
        assert store.baseline_run_id("latest", flow_path=here, before=runs[4]) == "r1"  # not another flow's r2
        assert store.baseline_run_id("latest", flow_path=None, before=runs[3]) == "r3"  # built in code
        assert store.baseline_run_id("latest", flow_path=there) == "r6"  # the same file name, in another place
        assert store.baseline_run_id("r2", flow_path=here) == "r2"  # a named run is that run
        with pytest.raises(RunNotFoundError, match=r"no earlier run of /work/a/flows/chat\.yaml"):
            store.baseline_run_id("latest", flow_path=here, before=runs[0])
        with pytest.raises(RunNotFoundError, match="a flow built in code"):
            store.baseline_run_id("latest", flow_path=None, before=runs[2])
