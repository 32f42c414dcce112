"""Run-level latency assertions: `{metric, p, max_ms}` is judged once every turn is in, over each provider's
turns, and each turn carrying it gets that verdict (and its status follows)."""

from __future__ import annotations

from pathlib import Path

import yaml

import rtflow
from rtflow.results.store import RunStore


def _run(folder: Path, max_ms: float) -> rtflow.RunResult:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "voice"}, "openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }}"],
        "default_test": {"assert": [{"type": "latency", "value": {"metric": "ttfb", "p": 95, "max_ms": max_ms}}]},
        "tests": [{"vars": {"q": f"question {index}"}} for index in range(4)],
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    return rtflow.run(flow, sim=True, db=folder / "runs.db")


def test_a_percentile_within_budget_passes_every_turn_with_the_runs_figure(tmp_path: Path) -> None:
    result = _run(tmp_path, 60_000)
    realtime = [turn for turn in result.turns if turn.provider == "voice"]
    assert len(realtime) == 4 and all(turn.status == "passed" for turn in realtime)
    (verdict,) = realtime[0].assertions
    assert verdict.reason.startswith("ttfb p95 over 4 turns:") and "<= 60000 ms" in verdict.reason


def test_a_percentile_over_budget_fails_every_turn_that_carries_it_and_is_stored_so(tmp_path: Path) -> None:
    result = _run(tmp_path, 0.001)
    assert {turn.status for turn in result.turns} == {"failed"}
    reasons = {turn.provider: turn.assertions[0].reason for turn in result.turns}
    assert all("p95 over 4 turns" in reason and "> 0.001 ms" in reason for reason in reasons.values()), reasons
    with RunStore(tmp_path / "runs.db", read_only=True) as store:  # what `rtflow show` reads
        assert {turn.status for turn in store.turns(result.run.run_id)} == {"failed"}
