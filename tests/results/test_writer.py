"""The run's writer: every record handed over reaches SQLite (and the JSONL stream), in order; failures surface."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from rtflow.errors import StoreError
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import JsonlWriter
from rtflow.results.store import RunStore
from rtflow.runner.writer import TurnWriter


def turn(node: str, status: str, run_id: str = "run-1") -> TurnRecord:
    return TurnRecord(
        run_id=run_id, node_id=node, conversation_id="c", thread_id="t", turn_index=0,
        provider="p", provider_id="openai:chat:x", prompt="prompt", status=status,  # type: ignore[arg-type]
    )  # fmt: skip


def started_store(path: Path) -> RunStore:
    store = RunStore(path)
    store.start_run(RunRecord(run_id="run-1", started_at=time.time()))
    return store


def test_every_record_is_stored_and_a_later_record_of_a_node_wins(tmp_path: Path) -> None:
    """500 records put while the writer task runs are all committed; a node's verdict replaces its pending record."""
    store = started_store(tmp_path / "runs.db")
    jsonl = JsonlWriter(tmp_path / "turns.jsonl")
    writer = TurnWriter(store, jsonl)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(writer.run)
            for index in range(250):
                writer.put(turn(f"n{index}", "pending"))
                if index % 7 == 0:
                    await anyio.sleep(0)  # let some commits happen between puts
                writer.put(turn(f"n{index}", "passed" if index % 2 else "failed"))
            writer.close()

    anyio.run(main)
    jsonl.close()
    stored = {t.node_id: t.status for t in store.turns("run-1")}
    assert len(stored) == 250
    assert all(status == ("passed" if int(node[1:]) % 2 else "failed") for node, status in stored.items())
    lines = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert len(lines) == 250 and {line["status"] for line in lines} == {"passed", "failed"}


def test_a_record_is_on_disk_at_the_next_turn_of_the_loop(tmp_path: Path) -> None:
    """A record put while the writer runs is readable from a second connection right after one loop turn."""
    store = started_store(tmp_path / "runs.db")
    writer = TurnWriter(store, None)

    async def main() -> list[str]:
        async with anyio.create_task_group() as group:
            group.start_soon(writer.run)
            await anyio.sleep(0)
            writer.put(turn("first", "passed"))
            for _ in range(3):
                await anyio.sleep(0)
            with RunStore(tmp_path / "runs.db") as reader:
                seen = [t.node_id for t in reader.turns("run-1")]
            writer.close()
        return seen

    assert anyio.run(main) == ["first"]


def test_close_writes_what_is_queued_even_without_the_task(tmp_path: Path) -> None:
    """After a cancelled run the writer task may never have woken: close still writes everything."""
    store = started_store(tmp_path / "runs.db")
    writer = TurnWriter(store, None)
    writer.put(turn("late", "passed"))
    writer.close()
    assert [t.node_id for t in store.turns("run-1")] == ["late"]


def test_a_failed_write_is_raised_not_lost(tmp_path: Path) -> None:
    """Records of a run that was never started cannot be stored: the writer says so."""
    writer = TurnWriter(RunStore(tmp_path / "runs.db"), None)
    writer.put(turn("orphan", "passed", run_id="never-started"))
    with pytest.raises(StoreError, match="no run 'never-started'"):
        writer.close()
