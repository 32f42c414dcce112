"""`on_turn` is called once per turn, with the turn's final record (never a `pending` one)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

import rtflow
from rtflow.results.records import TurnRecord
from rtflow.sim import SimConfig
from rtflow.sim.config import parse_fault

_RUN_LEVEL = {"type": "latency", "value": {"metric": "ttfb", "p": 95, "max_ms": 60_000}}


def _write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def mixed_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Graded turns (passing and failing), ungraded ones, turns judged over the run, an error and a skip."""
    monkeypatch.chdir(tmp_path)  # a run without a store keeps its artifacts under ./.rtflow
    return _write(
        tmp_path,
        {
            "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
            "prompts": ["{{ question }}"],
            "threads": {
                "mixed": [
                    {"question": "hello there", "assert": [{"type": "icontains", "value": "hello"}]},
                    {"question": "nothing to check"},
                    {"question": "wrong", "assert": [{"type": "icontains", "value": "elephant"}]},
                ],
                "timed": [
                    {"question": "one", "assert": [_RUN_LEVEL]},
                    {"question": "two", "assert": [_RUN_LEVEL, {"type": "icontains", "value": "two"}]},
                ],
                "broken": [{"question": "BREAK now"}, {"question": "never sent"}],
            },
            "execution": {"retries": 0, "timeout": "10s", "backoff_base": "0ms", "backoff_max": "0ms"},
        },
    )


def _fault() -> SimConfig:
    return SimConfig(faults=[parse_fault("server_error@any;match=BREAK")])


def test_each_turn_is_handed_over_once_with_its_final_record(mixed_flow: Path) -> None:
    """Graded, ungraded, failed, errored, skipped and run-judged turns: one call each, the record the run keeps."""
    seen: list[TurnRecord] = []
    result = rtflow.run(mixed_flow, sim=_fault(), store=False, on_turn=seen.append)
    calls = Counter(record.node_id for record in seen)
    assert calls == Counter({turn.node_id: 1 for turn in result.turns})
    assert len(calls) == result.plan.counts.turns == 7
    assert all(record.status != "pending" for record in seen)
    final = {turn.node_id: turn for turn in result.turns}
    assert all(record == final[record.node_id] for record in seen)
    statuses = {record.node_id: record.status for record in seen}
    assert statuses == {
        "realtime/mixed/1": "passed",
        "realtime/mixed/2": "passed",
        "realtime/mixed/3": "failed",
        "realtime/timed/1": "passed",
        "realtime/timed/2": "passed",
        "realtime/broken/1": "error",
        "realtime/broken/2": "skipped",
    }


def test_turns_judged_over_the_run_arrive_last_with_the_runs_verdict(mixed_flow: Path) -> None:
    """A turn with a `latency` percentile assertion is handed over after every other turn, its result the run's."""
    seen: list[TurnRecord] = []
    rtflow.run(mixed_flow, sim=_fault(), store=False, on_turn=seen.append)
    order = [record.node_id for record in seen]
    assert order[-2:] == ["realtime/timed/1", "realtime/timed/2"]
    for record in seen[-2:]:
        (latency,) = [result for result in record.assertions if result.type == "latency"]
        assert "over 2 turns" in (latency.reason or ""), latency.reason  # the run's verdict, not the placeholder


def test_an_async_callback_is_awaited_once_per_turn(mixed_flow: Path) -> None:
    """An async `on_turn` is awaited before `arun` returns, once per turn."""
    seen: list[str] = []

    async def on_turn(record: TurnRecord) -> None:
        await anyio.sleep(0)
        seen.append(record.node_id)

    async def main() -> rtflow.RunResult:
        return await rtflow.arun(mixed_flow, sim=_fault(), store=False, on_turn=on_turn)

    result = anyio.run(main)
    assert sorted(seen) == sorted(turn.node_id for turn in result.turns)


def test_a_dialogues_turns_arrive_once_the_last_with_the_dialogues_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulated dialogue's agent turns are handed over once each; the last carries the dialogue's assertions."""
    monkeypatch.chdir(tmp_path)
    flow = _write(
        tmp_path,
        {
            "providers": [{"id": "openai:realtime:gpt-realtime", "label": "agent"}],
            "prompts": ["{{ caller }}"],
            "grader": "openai:chat:gpt-4.1-mini",
            "threads": {
                "refund": [
                    {
                        "simulate": {
                            "caller": "openai:chat:gpt-4.1-mini",
                            "persona": "A buyer",
                            "goal": "I want a refund for my kettle. Please confirm the refund.",
                            "max_turns": 4,
                        },
                        "assert": [{"type": "turns", "value": {"max": 4}}],
                    }
                ]
            },
        },
    )
    seen: list[TurnRecord] = []
    result = rtflow.run(flow, sim=True, store=False, on_turn=seen.append)
    assert result.passed
    assert [record.node_id for record in seen] == [turn.node_id for turn in result.turns]
    assert len(seen) == 2  # the goal's two sentences, then the caller's stop phrase
    assert seen[-1].dialogue is not None and seen[-1].dialogue.stop_reason == "phrase"
    assert [result.type for result in seen[-1].assertions] == ["turns"]
