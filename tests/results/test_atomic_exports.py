"""Exports are whole or absent: a failure or a kill mid-write never leaves an empty or half file at the target."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from results_samples import make_run, make_turns

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import CSV_COLUMNS, write_export

HERE = Path(__file__).parent
TURNS = 1500
"""Enough for each export to take a while to write, so that kills land in the middle of one."""

WRITER = """
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[3])
from results_samples import make_run, make_turns
from rtflow.results.report import JsonlWriter, write_export

target, count = Path(sys.argv[1]), int(sys.argv[2])
base = make_turns()[0]
turns = [base.model_copy(update={"node_id": f"n{i}", "conversation_id": f"c{i}"}) for i in range(count)]
if target.name.startswith("stream"):  # the run's streamed JSONL: one line per finished turn, forever
    writer = JsonlWriter(target)
    writer.write(turns[0])
    print("ready", flush=True)
    while True:
        for turn in turns:
            writer.write(turn)
write_export(make_run(), turns, target)
print("ready", flush=True)
while True:
    write_export(make_run(), turns, target)
"""


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def read_back(target: Path) -> list[str]:
    """The node ids of the turns the file at `target` holds, failing on anything incomplete."""
    text = target.read_text(encoding="utf-8")
    if target.suffix == ".json":
        document = json.loads(text)
        RunRecord.model_validate(document["run"])
        return [TurnRecord.model_validate(turn).node_id for turn in document["turns"]]
    if target.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        assert all(tuple(row) == CSV_COLUMNS and None not in row.values() for row in rows)
        return [row["node"] for row in rows]
    # The stream is appended to while it is read; a kill can cut its last line short, never an earlier one.
    lines = text.split("\n")
    return [TurnRecord.model_validate_json(line).node_id for line in lines[:-1]]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
@pytest.mark.parametrize("name", ["run.json", "run.csv", "run.jsonl", "stream.jsonl"])
def test_a_kill_mid_write_leaves_the_previous_or_the_new_export(tmp_path: Path, name: str) -> None:
    """A process writing an export over and over is SIGKILLed at several moments: the target always reads back
    whole (the streamed JSONL: every line but a cut-short last one), and some kills did land mid-write (their
    temporary file is left)."""
    target = tmp_path / name
    killed_mid_write = 0
    for delay in (0.02, 0.11, 0.23, 0.37):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(TURNS), str(HERE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n", writer.stderr
            time.sleep(delay)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.communicate(timeout=30)
        nodes = read_back(target)
        if name.startswith("stream"):
            assert nodes[0] == "n0"
        else:
            assert nodes == [f"n{index}" for index in range(TURNS)]
        if name.endswith(".csv"):  # its last cells are whole too (total_ms, the empty ones, then the vars)
            empty_after_total = CSV_COLUMNS.index("vars") - CSV_COLUMNS.index("total_ms") - 1
            last_vars = b'"{""question"": ""Question 1 of japan_travel""}"'
            assert target.read_bytes().endswith(b",120.0" + b"," * empty_after_total + b"," + last_vars + b"\r\n")
        killed_mid_write += bool(leftovers(tmp_path))
        for leftover in leftovers(tmp_path):
            leftover.unlink()
    if not name.startswith("stream"):
        assert killed_mid_write >= 1, "no kill landed while an export was being written"


class Exploding(list[TurnRecord]):
    """Turns that fail to serialise after the first one: an export that breaks half-way."""

    def __iter__(self) -> Iterator[TurnRecord]:
        yield self[0]
        raise RuntimeError("serialising the second turn failed")


@pytest.mark.parametrize("name", ["run.jsonl", "run.csv"])
def test_a_failure_mid_write_keeps_the_previous_export(tmp_path: Path, name: str) -> None:
    """When writing breaks half-way, the previous export is untouched and no temporary file is left."""
    run, turns = make_run(), make_turns()
    target = write_export(run, turns, tmp_path / name)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="second turn"):
        write_export(run, Exploding(turns), target)
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and symbolic links")
def test_exports_keep_the_permissions_and_links_a_plain_write_would(tmp_path: Path) -> None:
    """A new export gets the usual umask-based mode; an existing one keeps its mode; a symlinked target stays a link."""
    run, turns = make_run(), make_turns()
    umask = os.umask(0o022)
    try:
        fresh = write_export(run, turns, tmp_path / "fresh.json")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    private = tmp_path / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    write_export(run, turns, private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and len(read_back(private)) == len(turns)
    real = tmp_path / "reports" / "latest.html"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "report.html"
    link.symlink_to(real)
    write_export(run, turns, link)
    assert link.is_symlink() and "Threads × providers" in real.read_text()
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []
