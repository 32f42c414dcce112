"""Budgets and stopping early, through the real CLI against the simulator: `validate --estimate`, `--max-cost`,
`--fail-fast`, `--rerun-failed`, and `execution.repeat`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rtflow.results.store import RunStore

FLOW = """
description: four threads of three turns
providers:
  - id: openai:realtime:gpt-realtime
    label: realtime
    config: {modalities: [text]}
prompts:
  - "{{ question }}"
execution:
  concurrency: 1
tests:
"""

QUESTIONS = {
    "travel": ["Where should I go in Japan?", "When is Kyoto at its best?", "Which city has the best food?"],
    "cooking": ["How do I boil an egg?", "How long for a soft yolk?", "Should I salt the water?"],
    "banking": ["How do I open an account?", "Which documents do I need?", "Can I do it online?"],
    "weather": ["Will it rain tomorrow?", "How cold will it be?", "Should I take an umbrella?"],
}


def _flow(tmp_path: Path, *, failing: str | None = None, extra: str = "") -> Path:
    lines = [FLOW.replace("execution:\n", f"execution:\n{extra}") if extra else FLOW]
    for thread, questions in QUESTIONS.items():
        for question in questions:
            check = "banana" if thread == failing else question.split()[0]
            lines.append(
                f"  - vars: {{question: {json.dumps(question)}}}\n"
                f"    metadata: {{conversationId: {thread}}}\n"
                f"    assert: [{{type: icontains, value: {check}}}]\n"
            )
    path = tmp_path / "flow.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _rtflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtflow", *args, "--db", str(tmp_path / "runs.db")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run(tmp_path: Path, flow: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "result.json"
    done = _rtflow(tmp_path, "run", str(flow), "--sim", "--no-progress", "-o", str(out), *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(out.read_text(encoding="utf-8"))


def _estimated_cost(output: str) -> float:
    found = re.search(r"^  total: \d+ requests?, \$([0-9.]+)$", output, re.MULTILINE)
    assert found, output
    return float(found.group(1))


def test_the_estimate_is_within_ten_percent_of_the_simulated_run(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    _run(tmp_path, flow)  # one pass measures how long the answers are
    estimated = _rtflow(tmp_path, "validate", str(flow), "--estimate", "--sim", "--from-run", "latest", "--repeat", "3")
    assert estimated.returncode == 0, estimated.stderr
    assert "36 requests" in estimated.stdout and "assumptions:" in estimated.stdout
    _, result = _run(tmp_path, flow, "--repeat", "3")
    actual = result["summary"]["cost"]
    assert actual > 0
    assert abs(_estimated_cost(estimated.stdout) - actual) / actual <= 0.10


def test_the_estimate_states_its_assumptions_without_an_earlier_run(tmp_path: Path) -> None:
    estimated = _rtflow(tmp_path, "validate", str(_flow(tmp_path)), "--estimate", "--answer-tokens", "50")
    assert estimated.returncode == 0, estimated.stderr
    assert "realtime: 12 requests" in estimated.stdout
    assert "600 output tokens" in estimated.stdout  # 12 answers of 50 tokens
    assert "answers of 50 tokens" in estimated.stdout and "about 4 characters a token" in estimated.stdout


def test_max_cost_stops_new_turns_at_the_budget_and_records_the_rest_skipped(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    _, full = _run(tmp_path, flow)
    budget = full["summary"]["cost"] * 0.4
    code, result = _run(tmp_path, flow, "--max-cost", f"{budget:.8f}")
    assert code == 1
    turns = result["turns"]
    assert len(turns) == 12  # every turn accounted for: answered or skipped
    answered = [turn for turn in turns if turn["status"] == "passed"]
    skipped = [turn for turn in turns if turn["status"] == "skipped"]
    assert answered and skipped and len(answered) + len(skipped) == 12
    assert all(turn["error"]["message"].startswith("budget:") for turn in skipped)
    spent = sum(turn["output"]["cost"] for turn in answered)
    last = max(answered, key=lambda turn: turn["ended_at"])["output"]["cost"]
    assert spent >= budget  # it went on until the budget was reached...
    assert spent - last < budget  # ...and started nothing once it was (one call at a time)


def test_fail_fast_starts_nothing_after_the_first_failure(tmp_path: Path) -> None:
    code, result = _run(tmp_path, _flow(tmp_path, failing="travel"), "--fail-fast")
    assert code == 1
    statuses = [turn["status"] for turn in result["turns"]]
    assert statuses.count("failed") == 1
    skipped = [turn for turn in result["turns"] if turn["status"] == "skipped"]
    assert len(skipped) == 12 - statuses.count("failed") - statuses.count("passed")
    assert skipped and all(turn["error"]["message"].startswith("fail-fast:") for turn in skipped)


def test_rerun_failed_runs_only_the_threads_that_failed(tmp_path: Path) -> None:
    flow = _flow(tmp_path, failing="cooking")
    code, first = _run(tmp_path, flow)
    assert code == 1
    rerun = tmp_path / "rerun.json"
    done = _rtflow(
        tmp_path, "run", "--rerun-failed", first["run"]["run_id"], "--sim", "--no-progress", "-o", str(rerun)
    )
    assert done.returncode == 1, done.stderr
    again = json.loads(rerun.read_text(encoding="utf-8"))
    assert {turn["thread_id"] for turn in again["turns"]} == {"cooking"}
    assert len(again["turns"]) == 3


def test_rerun_failed_of_a_run_without_failures_runs_nothing(tmp_path: Path) -> None:
    _, first = _run(tmp_path, _flow(tmp_path))
    done = _rtflow(tmp_path, "run", "--rerun-failed", "latest", "--sim", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"run {first['run']['run_id']} has no failed, errored or skipped turn" in done.stdout


@pytest.mark.parametrize(("cli", "copies"), [((), 2), (("--repeat", "3"), 3)])
def test_execution_repeat_is_the_default_and_the_option_overrides_it(
    tmp_path: Path, cli: tuple[str, ...], copies: int
) -> None:
    flow = _flow(tmp_path, extra="  repeat: 2\n")
    done = _rtflow(tmp_path, "validate", str(flow), "--thread", "travel", *cli)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^  conversations\s+{copies}$", done.stdout, re.MULTILINE), done.stdout
    assert re.search(rf"^  turns\s+{3 * copies}$", done.stdout, re.MULTILINE), done.stdout


def test_a_simulated_dialogue_is_estimated_at_its_most(tmp_path: Path) -> None:
    """Its max_turns exchanges: that many agent answers and as many requests to the caller's model."""
    flow = tmp_path / "dialogue.yaml"
    flow.write_text(
        "providers: [{id: openai:realtime:gpt-realtime, label: agent, config: {modalities: [text]}}]\n"
        'prompts: ["{{ question }}"]\n'
        "tests:\n"
        "  - vars: {question: Hello}\n"
        "    metadata: {conversationId: call}\n"
        "  - simulate: {goal: Book a table for two. Then say goodbye., max_turns: 4}\n"
        "    vars: {question: Hi}\n"
        "    metadata: {conversationId: call}\n",
        encoding="utf-8",
    )
    estimated = _rtflow(tmp_path, "validate", str(flow), "--estimate", "--sim", "--answer-tokens", "10")
    assert estimated.returncode == 0, estimated.stderr
    assert "agent: 5 requests" in estimated.stdout  # the written turn, then four answers at most
    assert re.search(r"\(caller\): 4 requests, \d+ input and 40 output tokens", estimated.stdout), estimated.stdout
    assert "simulated dialogues at their max_turns" in estimated.stdout


def test_resuming_a_fail_fast_run_is_not_stopped_by_the_failure_it_keeps(tmp_path: Path) -> None:
    """The turns fail-fast skipped run on resume: the failure kept from before is not a new one, so the resumed
    run goes on until a turn fails in it (the failing thread's next turn, its turns all fail)."""
    code, first = _run(tmp_path, _flow(tmp_path, failing="travel"), "--fail-fast")
    assert code == 1 and any(turn["status"] == "skipped" for turn in first["turns"])
    resumed = tmp_path / "resumed.json"
    done = _rtflow(
        tmp_path, "run", "--resume", first["run"]["run_id"], "--sim", "--no-progress", "--fail-fast", "-o", str(resumed)
    )
    assert done.returncode == 1, done.stderr
    turns = json.loads(resumed.read_text(encoding="utf-8"))["turns"]
    failed = [(turn["thread_id"], turn["turn_index"]) for turn in turns if turn["status"] == "failed"]
    assert failed == [("travel", 0), ("travel", 1)]  # the kept failure, then a new one the resumed run asked


@pytest.mark.parametrize("option", [["--max-cost", "1"], ["--fail-fast"]])
def test_options_that_would_hold_per_batch_are_refused_on_ray(tmp_path: Path, option: list[str]) -> None:
    """A budget or fail-fast would hold per Ray batch, not for the run: refused before anything runs or is stored."""
    pytest.importorskip("ray")
    done = _rtflow(tmp_path, "run", str(_flow(tmp_path)), "--sim", "--no-progress", "--executor", "ray", *option)
    assert done.returncode == 2 and f"{option[0]} cannot be used with --executor ray" in done.stderr
    assert "Traceback" not in done.stderr
    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        assert store.list_runs(None) == []


def test_a_dialogue_stopped_by_the_budget_records_the_turn_it_did_not_take(tmp_path: Path) -> None:
    """`--max-cost` spent in the middle of a simulated dialogue: the turns it took stand, and the next one is
    recorded `skipped` with the budget's reason, so the run accounts for where the dialogue stopped."""
    flow = tmp_path / "dialogue.yaml"
    goal = "I want a table. For two people. At eight tonight. Near the river. With a view. Thanks."
    flow.write_text(
        "providers: [{id: openai:realtime:gpt-realtime, label: agent, config: {modalities: [text]}}]\n"
        'prompts: ["{{ question }}"]\n'
        "execution: {concurrency: 1}\n"
        "tests:\n"
        f"  - simulate: {{goal: {json.dumps(goal)}, max_turns: 8}}\n"
        "    vars: {question: Hi}\n"
        "    metadata: {conversationId: call}\n",
        encoding="utf-8",
    )
    _, full = _run(tmp_path, flow)
    answered_in_full = [turn for turn in full["turns"] if turn["output"] and turn["output"]["cost"]]
    assert len(answered_in_full) >= 6
    budget = sum(turn["output"]["cost"] for turn in answered_in_full[:3]) * 0.99  # spent within the third turn
    code, result = _run(tmp_path, flow, "--max-cost", f"{budget:.10f}")
    assert code == 1
    statuses = [turn["status"] for turn in sorted(result["turns"], key=lambda turn: turn["turn_index"])]
    assert statuses[:3] == ["passed"] * 3 and statuses[3:] == ["skipped"], statuses
    (skipped,) = [turn for turn in result["turns"] if turn["status"] == "skipped"]
    assert skipped["error"]["message"].startswith("budget:") and skipped["turn_index"] == 3
