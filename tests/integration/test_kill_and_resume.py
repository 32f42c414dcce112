"""A run killed with SIGKILL loses nothing it finished, and `--resume` runs exactly what is missing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

THREADS, TURNS = 50, 5


def write_flow(folder: Path) -> Path:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
        "prompts": ["{{ question }}"],
        "threads": {
            f"t{thread:02d}": [
                {
                    "question": f"thread {thread} turn {turn} {'keyword' if turn % 2 else 'other'}",
                    "assert": [{"type": "icontains", "value": "keyword"}],
                }
                for turn in range(TURNS)
            ]
            for thread in range(THREADS)
        },
        "execution": {"concurrency": 10, "timeout": "20s"},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def rtflow_run(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rtflow.cli", "run", *map(str, args), "--sim", "--no-progress"]


def stored(db: Path) -> dict[str, tuple[str, str]]:
    """node id -> (status, the stored record JSON)."""
    try:
        with sqlite3.connect(db) as connection:
            return {
                node: (status, record)
                for node, status, record in connection.execute("select node_id, status, record from turns")
            }
    except sqlite3.Error:
        return {}


def verdicts(db: Path) -> dict[str, tuple[str, list[bool]]]:
    result = {}
    for node, (status, record) in stored(db).items():
        result[node] = (status, [a["passed"] for a in json.loads(record)["assertions"]])
    return result


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_then_resume_runs_only_the_missing_turns(tmp_path: Path) -> None:
    """Kill -9 mid-run; resume calls the model once per missing turn, rewrites no finished turn, and ends
    with the same verdicts as a clean run."""
    flow = write_flow(tmp_path)
    db = tmp_path / "killed.db"
    process = subprocess.Popen(
        rtflow_run(flow, "--db", db, "--sim-latency-ms", "40"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(stored(db)) < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = stored(db)
    assert 60 <= len(before) < THREADS * TURNS, "the kill must land mid-run"
    answered = {node for node, (status, _) in before.items() if status in ("passed", "failed", "pending")}

    log = tmp_path / "resume-sim.jsonl"
    resumed = subprocess.run(
        rtflow_run("--resume", "latest", "--db", db, "--sim-log", log), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 1, resumed.stderr  # half the turns fail their assertion by design
    after = stored(db)
    assert len(after) == THREADS * TURNS
    for node, (status, record) in before.items():
        if status in ("passed", "failed"):
            assert after[node] == (status, record), f"{node} was stored again"

    events = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [e for e in events if e["dir"] == "in" and e["type"] == "response.create"]
    assert len(calls) == THREADS * TURNS - len(answered)

    clean_db = tmp_path / "clean.db"
    clean = subprocess.run(rtflow_run(flow, "--db", clean_db), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 1, clean.stderr
    assert verdicts(db) == verdicts(clean_db)
