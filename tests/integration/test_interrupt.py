"""Ctrl-C: no provider request starts after the first interrupt, and every count agrees afterwards."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from rtflow.results.summary import RunSummary


def _flow(folder: Path) -> Path:
    # 30 conversations of 4 turns at 300 ms and concurrency 8: most calls wait for a slot when Ctrl-C comes.
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
        "prompts": ["{{ question }}"],
        "threads": {f"t{i}": [{"question": f"thread {i} turn {k}"} for k in range(4)] for i in range(30)},
        "execution": {"concurrency": 8, "timeout": "10s", "retries": 0},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_no_request_starts_after_ctrl_c_and_the_counts_agree(tmp_path: Path) -> None:
    db, sim_log, log_file, export = (
        tmp_path / "runs.db",
        tmp_path / "sim.jsonl",
        tmp_path / "run.log",
        tmp_path / "x.json",
    )
    command = [sys.executable, "-m", "rtflow.cli", "run", str(_flow(tmp_path)), "--sim", "--sim-latency-ms", "300"]
    command += ["--sim-log", str(sim_log), "--log-file", str(log_file), "--db", str(db), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as connection:
            try:
                if connection.execute("select count(*) from turns").fetchone()[0] >= 10:
                    break
            except sqlite3.OperationalError:  # the store is not created yet
                pass
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr

    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    (interrupted,) = [event for event in events if event["event"] == "run.interrupted"]
    stopped_at = datetime.fromisoformat(interrupted["timestamp"]).timestamp()
    requests = [
        entry["ts"]
        for entry in map(json.loads, sim_log.read_text().splitlines())
        if entry["dir"] == "in" and entry["type"] == "response.create"
    ]
    late = [ts - stopped_at for ts in requests if ts > stopped_at + 0.05]
    assert requests and not late, f"{len(late)} requests reached the simulator after Ctrl-C: {late[:5]}"

    exported = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "export", "latest", "--db", str(db), "-o", str(export)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert exported.returncode == 0
    summary = RunSummary.model_validate(json.loads(export.read_text())["summary"])
    assert summary.turns + summary.not_run == 120 and summary.not_run > 0
    for status, count in summary.status_counts().items():  # the CLI's table printed the same numbers
        assert f"{status}" in stdout or count == 0
    runs = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "runs", "--db", str(db)], capture_output=True, text=True, check=True
    )
    row = next(line for line in runs.stdout.splitlines() if "interrupted" in line)
    counts = summary.status_counts()
    assert row.split()[-4:] == [str(counts.get(status, 0)) for status in ("passed", "failed", "error", "skipped")]
