"""The SQLite run store: durable turn-by-turn writes, upserts, schema versions and clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from results_samples import RUN_ID, T0, make_run, make_turns

from rtflow.errors import StoreError
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
