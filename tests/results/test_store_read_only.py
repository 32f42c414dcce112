"""A run store that may not be written (a write-protected file, or folder) can still be listed, shown and exported."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from results_samples import RUN_ID, make_run, make_turns

from rtflow.cli import main
from rtflow.results.records import TurnRecord
from rtflow.results.store import RunStore

NOBODY = 65534

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def as_unprivileged(action: Callable[[], dict[str, object]]) -> dict[str, object]:
    """`action()` where file permissions apply: here, or (run as root, who ignores them) in a forked child
    that has become `nobody`. Its result comes back as JSON; its exception as a failure naming it."""
    if os.geteuid() != 0:
        return action()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - measured in the parent
        os.close(read_end)
        try:
            os.setuid(NOBODY)
            outcome: dict[str, object] = {"result": action()}
        except PermissionError as exc:
            outcome = {"skip": f"cannot become nobody: {exc}"}
        except BaseException:
            outcome = {"error": traceback.format_exc()}
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(json.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        outcome = json.loads(pipe.read() or '{"error": "the child died"}')
    os.waitpid(child, 0)
    if "skip" in outcome:
        pytest.skip(str(outcome["skip"]))
    assert "error" not in outcome, outcome["error"]
    result = outcome["result"]
    assert isinstance(result, dict)
    return result


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder that `nobody` can reach (pytest's own tmp folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="rtflow-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in (folder, *folder.rglob("*")):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder)


def read_with_the_cli(db: Path, exports: Path) -> dict[str, object]:
    """`runs`, `show` and `export` of the store at `db`: their exit codes and output, and the exported turns."""
    runner = CliRunner()
    listed = runner.invoke(main, ["runs", "--db", str(db)], terminal_width=200)
    shown = runner.invoke(main, ["show", "latest", "--db", str(db)], terminal_width=200)
    exported = runner.invoke(main, ["export", RUN_ID, "--db", str(db), "-o", str(exports / "run.jsonl")])
    written = (exports / "run.jsonl").read_text() if exported.exit_code == 0 else ""
    return {
        "codes": [listed.exit_code, shown.exit_code, exported.exit_code],
        "output": listed.output + shown.output + exported.output,
        "exported": [TurnRecord.model_validate_json(line).node_id for line in written.splitlines()],
    }


def data_files(db: Path) -> dict[str, bytes]:
    """The store's data: its file and what its WAL holds. (The `-shm` file is SQLite's shared index, not data; a
    reader may leave it, and an empty WAL, in a folder it can write.)"""
    files = {path.name: path.read_bytes() for path in db.parent.iterdir() if not path.name.endswith("-shm")}
    return {name: data for name, data in files.items() if data or not name.endswith("-wal")}


def fill(db: Path) -> None:
    with RunStore(db) as store:
        store.start_run(make_run())
        store.save_turns(make_turns())


@pytest.mark.parametrize(
    ("file_mode", "folder_mode", "writer_open"),
    [
        (0o444, 0o777, False),  # the file is write-protected; its folder is not
        (0o644, 0o555, False),  # the folder is write-protected: SQLite cannot make its shared-memory file there
        (0o444, 0o555, False),  # both
        (0o644, 0o555, True),  # both, while a writer has the file open (its WAL not yet checkpointed)
    ],
    ids=["file", "folder", "both", "folder-while-written"],
)
def test_runs_show_and_export_read_a_store_they_may_not_write(
    shared_folder: Path, file_mode: int, folder_mode: int, writer_open: bool
) -> None:
    """Each command exits 0 with the run's turns, and the store's data (the file and its WAL) is left byte for byte
    as it was."""
    exports = shared_folder / "exports"
    exports.mkdir(mode=0o777)
    exports.chmod(0o777)
    warm_up = shared_folder / "warm-up" / "rtflow.db"
    fill(warm_up)
    read_with_the_cli(warm_up, exports)  # imports everything the commands use while they still can be read
    (exports / "run.jsonl").unlink()
    db = shared_folder / "store" / "rtflow.db"
    fill(db)
    writer = RunStore(db) if writer_open else None
    try:
        if writer is not None:  # a late turn sits in the WAL, not yet in the main file
            writer.save_turns([make_turns()[0].model_copy(update={"node_id": "late/1", "conversation_id": "late"})])
        db.chmod(file_mode)
        db.parent.chmod(folder_mode)
        before = data_files(db)
        result = as_unprivileged(lambda: read_with_the_cli(db, exports))
        after = data_files(db)
    finally:
        db.parent.chmod(0o755)
        if writer is not None:
            writer.close()
    assert result["codes"] == [0, 0, 0], result["output"]
    expected = sorted(turn.node_id for turn in make_turns()) + (["late/1"] if writer_open else [])
    exported = result["exported"]
    assert isinstance(exported, list) and sorted(exported) == sorted(expected)
    assert RUN_ID in str(result["output"]) and "Traceback" not in str(result["output"])
    assert after == before


def test_a_store_in_a_folder_that_cannot_be_written_is_read_by_the_library(shared_folder: Path) -> None:
    """RunStore(read_only=True) reads a WAL-mode file in a write-protected folder (no -wal or -shm file beside it)."""
    db = shared_folder / "store" / "rtflow.db"
    fill(db)
    assert sorted(path.name for path in db.parent.iterdir()) == ["rtflow.db"]
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    db.parent.chmod(0o555)

    def read() -> dict[str, object]:
        with RunStore(db, read_only=True) as store:
            return {"runs": [run.run_id for run in store.list_runs()], "turns": len(store.turns(RUN_ID))}

    assert as_unprivileged(read) == {"runs": [RUN_ID], "turns": len(make_turns())}
