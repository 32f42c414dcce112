"""The run's writer: every record handed over reaches SQLite (and the JSONL stream), in order; failures surface."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rtflow.errors import StoreError
from rtflow.records import RunRecord, TurnRecord
from rtflow.report import JsonlWriter
from rtflow.store import RunStore
from rtflow.writer import TurnWriter


def turn(node: str, status: str, run_id: str = "run-1") -> TurnRecord:
    return TurnRecord(
        run_id=run_id,
        node_id=node,
        conversation_id="c",
        thread_id="t",
        turn_index=0,
        provider="p",
        provider_id="openai:chat:x",
        prompt="prompt",
        status=status,  # type: ignore[arg-type]
    )


def test_every_record_is_stored_and_a_later_record_of_a_node_wins(tmp_path: Path) -> None:
    """500 records put at once are all committed by close; a node's verdict replaces its pending record."""
    store = RunStore(tmp_path / "runs.db")
    store.start_run(RunRecord(run_id="run-1", started_at=time.time()))
    jsonl = JsonlWriter(tmp_path / "turns.jsonl")
    writer = TurnWriter(store, jsonl)
    for index in range(250):
        writer.put(turn(f"n{index}", "pending"))
        writer.put(turn(f"n{index}", "passed" if index % 2 else "failed"))
    writer.close()
    jsonl.close()
    stored = {t.node_id: t.status for t in store.turns("run-1")}
    assert len(stored) == 250
    assert all(status == ("passed" if int(node[1:]) % 2 else "failed") for node, status in stored.items())
    lines = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert len(lines) == 250 and {line["status"] for line in lines} == {"passed", "failed"}


def test_records_are_readable_from_another_connection_soon_after_put(tmp_path: Path) -> None:
    """A record put while the writer runs is visible to a second reader without waiting for close."""
    store = RunStore(tmp_path / "runs.db")
    store.start_run(RunRecord(run_id="run-1", started_at=time.time()))
    with TurnWriter(store, None) as writer:
        writer.put(turn("first", "passed"))
        deadline = time.monotonic() + 5
        seen: list[TurnRecord] = []
        with RunStore(tmp_path / "runs.db") as reader:
            while not seen and time.monotonic() < deadline:
                seen = reader.turns("run-1")
                time.sleep(0.005)
        assert [t.node_id for t in seen] == ["first"]


def test_a_failed_write_is_raised_not_lost(tmp_path: Path) -> None:
    """Records of a run that was never started cannot be stored: the writer says so on close."""
    store = RunStore(tmp_path / "runs.db")
    writer = TurnWriter(store, None)
    writer.put(turn("orphan", "passed", run_id="never-started"))
    with pytest.raises(StoreError, match="no run 'never-started'"):
        writer.close()
