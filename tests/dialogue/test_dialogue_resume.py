"""A dialogue killed with SIGKILL mid-way loses no finished generated turn, and `--resume` continues it from the
stored turns: neither the caller model nor the agent is asked again for one of them (the simulator's log counts
the requests), and the dialogue ends as a clean run's does."""

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

GOAL = " ".join(f"Sentence number {n} of the goal." for n in range(1, 9))


def _flow(folder: Path) -> Path:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "agent"}],
        "prompts": ["{{ caller }}"],
        "threads": {
            "t": [
                {
                    "simulate": {"caller": "openai:chat:gpt-4.1-mini", "goal": GOAL, "max_turns": 10},
                    "assert": [{"type": "stop-reason", "value": "phrase"}, {"type": "turns", "value": 8}],
                }
            ]
        },
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _rtflow(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rtflow.cli", "run", *map(str, args), "--sim", "--no-progress"]


def _stored(db: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    try:
        with sqlite3.connect(db) as connection:
            rows = connection.execute("select node_id, record from turns")
            return {node: json.loads(record) for node, record in rows}
    except sqlite3.Error:
        return {}


def _requests(log: Path) -> tuple[int, int]:
    """(caller-model requests, agent responses asked for) in a simulator log."""
    events = [json.loads(line) for line in log.read_text().splitlines()]
    caller = sum(1 for e in events if e["dir"] == "in" and e["endpoint"] == "chat" and "<goal>" in json.dumps(e))
    agent = sum(1 for e in events if e["dir"] == "in" and e["type"] == "response.create")
    return caller, agent


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_mid_dialogue_then_resume_asks_nothing_twice(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    db = tmp_path / "runs.db"
    first_log = tmp_path / "first.jsonl"
    process = subprocess.Popen(
        _rtflow(flow, "--db", db, "--sim-latency-ms", "150", "--sim-log", first_log),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(_stored(db)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    kept = _stored(db)
    assert 3 <= len(kept) < 8, "the kill must land mid-dialogue"
    second_log = tmp_path / "second.jsonl"
    done = subprocess.run(
        _rtflow("--resume", "latest", "--db", db, "--sim-log", second_log), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    final = _stored(db)
    assert len(final) == 8
    for node, record in kept.items():  # no finished turn was rewritten
        assert final[node]["output"] == record["output"] and final[node]["dialogue"] == record["dialogue"]
    callers = [final[f"agent/t/{n}"]["dialogue"]["caller"] for n in range(1, 9)]
    assert callers == [f"Sentence number {n} of the goal." for n in range(1, 9)]
    last = final["agent/t/8"]
    assert last["status"] == "passed" and last["dialogue"]["stop_reason"] == "phrase"
    caller_requests, agent_responses = _requests(second_log)
    missing = 8 - len(kept)
    assert agent_responses == missing  # the kept turns were replayed as history, not asked again
    assert caller_requests == missing + 1  # the missing lines, then the stop phrase


def test_replay_callers_says_the_earlier_runs_lines_and_asks_no_caller_model(tmp_path: Path) -> None:
    """`--replay-callers RUN`: the agent receives byte-identical caller turns; the caller model is never asked."""
    flow = _flow(tmp_path)
    db = tmp_path / "runs.db"
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert subprocess.run(_rtflow(flow, "--db", db, "--sim-log", first_log), timeout=120).returncode == 0
    done = subprocess.run(
        _rtflow(flow, "--db", db, "--sim-log", second_log, "--replay-callers", "latest"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def agent_heard(log: Path) -> list[str]:
        events = [json.loads(line) for line in log.read_text().splitlines()]
        return [
            json.dumps(e["payload"]["item"], sort_keys=True)
            for e in events
            if e["dir"] == "in" and e["type"] == "conversation.item.create"
        ]

    assert agent_heard(second_log) == agent_heard(first_log) and len(agent_heard(first_log)) == 8
    caller_requests, _ = _requests(second_log)
    assert caller_requests == 0
