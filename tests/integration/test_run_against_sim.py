"""Whole-stack runs: loader, compiler, scheduler, providers and the store against the simulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow
from rtflow.results.store import RunStore
from rtflow.sim import SimConfig
from rtflow.sim.config import LatencyConfig, parse_fault

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
FAST = {"backoff_base": "0ms", "backoff_max": "0ms"}


def write_flow(
    folder: Path, threads: dict[str, list[str]], *, retries: int = 2, extra: dict[str, Any] | None = None
) -> Path:
    """A realtime provider with a chat fallback and an inline prompt, one thread per entry."""
    document: dict[str, Any] = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "label": "realtime",
                "fallback": {"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
            }
        ],
        "prompts": ["{{ question }}"],
        "threads": {name: [{"question": q} for q in questions] for name, questions in threads.items()},
        "execution": {"retries": retries, "timeout": "10s", **FAST},
    }
    document.update(extra or {})
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_conversation_flow_passes_with_exact_per_thread_history(tmp_path: Path) -> None:
    """flows/conversation.yaml passes; both threads are in flight at once; each reply proves its own history."""
    log = tmp_path / "sim.jsonl"
    config = SimConfig(latency=LatencyConfig(first_delta_ms=50), log_path=log)
    result = rtflow.run(FLOWS / "conversation.yaml", sim=config, db=tmp_path / "runs.db")
    assert result.passed, [(t.node_id, t.status, t.error, t.assertions) for t in result.failures]
    assert len(result.turns) == 6
    for turn in result.turns:
        assert turn.output is not None and not turn.is_fallback
        assert f"(user messages: {turn.turn_index + 1}," in turn.output.text
        assert f'You said: "{turn.vars["question"]}"' in turn.output.text

    events = [json.loads(line) for line in log.read_text().splitlines()]
    spans: dict[str, list[float]] = {}
    for event in events:
        if event.get("endpoint") == "realtime":
            spans.setdefault(event["conn"], []).append(event["ts"])
    assert len(spans) == 2  # one socket per conversation, kept open across its three turns
    (a_start, a_end), (b_start, b_end) = [(min(ts), max(ts)) for ts in spans.values()]
    assert a_start < b_end and b_start < a_end  # the two conversations overlapped in time


def test_primary_failing_three_handshakes_falls_back_to_chat_and_goes_on(tmp_path: Path) -> None:
    """Handshake 500 x3 with retries=2: chat answers turn 1; turn 2 is back on realtime with turn 1 in history."""
    flow = write_flow(tmp_path, {"t": ["first question", "second question"]})
    config = SimConfig(faults=[parse_fault("status:500@realtimex3")])
    result = rtflow.run(flow, sim=config, store=False)
    first, second = result.turns
    assert first.status == "passed" and first.is_fallback and first.provider == "chat"
    assert [(c.provider, c.error.status if c.error else None) for c in first.calls] == [
        ("realtime", 500),
        ("realtime", 500),
        ("realtime", 500),
        ("chat", None),
    ]
    assert second.status == "passed" and not second.is_fallback
    assert second.output is not None and "(user messages: 2," in second.output.text


def test_forbidden_is_not_retried(tmp_path: Path) -> None:
    """A handshake 403 is tried once, then the fallback answers."""
    flow = write_flow(tmp_path, {"t": ["only question"]}, retries=3)
    result = rtflow.run(flow, sim=SimConfig(faults=[parse_fault("status:403@realtime")]), store=False)
    (turn,) = result.turns
    assert [c.provider for c in turn.calls] == ["realtime", "chat"]
    assert turn.calls[0].error is not None and turn.calls[0].error.kind == "authentication"


def test_every_provider_failing_gives_error_then_skipped(tmp_path: Path) -> None:
    """Turn 2 fails on realtime and chat: `error`, turn 3 `skipped` with the reason, the other thread passes."""
    flow = write_flow(
        tmp_path,
        {"doomed": ["one", "two BREAK", "three"], "fine": ["alpha", "beta", "gamma"]},
        retries=0,
    )
    config = SimConfig(faults=[parse_fault("server_error@any;match=BREAK")])
    result = rtflow.run(flow, sim=config, store=False)
    statuses = {t.node_id: t.status for t in result.turns}
    assert statuses == {
        "realtime/doomed/1": "passed",
        "realtime/doomed/2": "error",
        "realtime/doomed/3": "skipped",
        "realtime/fine/1": "passed",
        "realtime/fine/2": "passed",
        "realtime/fine/3": "passed",
    }
    skipped = next(t for t in result.turns if t.status == "skipped")
    assert skipped.error is not None and skipped.error.message.startswith("turn 2 failed")
    assert result.exit_code == 1


def test_each_finished_turn_reaches_the_callback_as_it_happens(tmp_path: Path) -> None:
    """`on_turn` sees each turn once, with its final record, before the run returns."""
    flow = write_flow(tmp_path, {"a": ["x", "y"], "b": ["z"]})
    seen: list[tuple[str, str]] = []
    result = rtflow.run(
        flow, sim=True, store=False, on_turn=lambda record: seen.append((record.node_id, record.status))
    )
    assert sorted(seen) == sorted((t.node_id, t.status) for t in result.turns)


def _count_turns(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return int(connection.execute("select count(*) from turns").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_exits_130_and_keeps_every_finished_turn(tmp_path: Path) -> None:
    """SIGINT to a running `rtflow run` subprocess: exit 130, finished turns stored, resume finishes the rest."""
    threads = {f"t{i}": [f"thread {i} turn {k}" for k in range(6)] for i in range(4)}
    flow = write_flow(tmp_path, threads, extra={"execution": {"concurrency": 2, "timeout": "10s"}})
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "rtflow.cli", "run", str(flow), "--sim", "--sim-latency-ms", "150"]
    command += ["--db", str(db), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while _count_turns(db) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stdout
    with sqlite3.connect(db) as connection:
        rows = connection.execute("select node_id, status from turns").fetchall()
        run_status = connection.execute("select status from runs").fetchone()[0]
    assert run_status == "interrupted"
    assert 3 <= len(rows) < 24
    assert all(status == "passed" for _node, status in rows)
    kept = {node for node, _ in rows}

    resumed = subprocess.run(
        [*command[:4], "--sim", "--db", str(db), "--no-progress", "--resume", "latest"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    with sqlite3.connect(db) as connection:
        after = dict(connection.execute("select node_id, status from turns").fetchall())
    assert len(after) == 24 and set(after.values()) == {"passed"}
    assert kept <= set(after)
    with RunStore(db) as store:
        turns = store.turns(store.resolve_run_id("latest"))
    for turn in turns:  # resumed conversations got their stored history replayed into a fresh session
        assert turn.output is not None
        assert f"(user messages: {turn.turn_index + 1}," in turn.output.text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    """With calls in flight for seconds, a second SIGINT ends the run well before the first one's grace period."""
    flow = write_flow(tmp_path, {"slow": ["one", "two"]})
    db = tmp_path / "runs.db"
    command = [sys.executable, "-m", "rtflow.cli", "run", str(flow), "--sim", "--sim-latency-ms", "8000"]
    process = subprocess.Popen(
        [*command, "--db", str(db), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the run is under way (its run record exists)
        try:
            with sqlite3.connect(db) as connection:
                if connection.execute("select count(*) from runs").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    second = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert time.monotonic() - second < 1.5
    assert "Traceback" not in stderr
