"""`--shard K/N` splits a suite across processes (CI jobs) by a stable hash of the conversation ids, and
`rtflow merge` puts the shards' runs back together as one run of the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rtflow.plan.compiler import shard_of
from rtflow.results.store import RunStore

THREADS = 12


def _flow(folder: Path, name: str = "flow.yaml", *, failing: int = 4) -> Path:
    tests = []
    for thread in range(THREADS):
        for turn in range(2):
            word = "zebra" if thread == failing and turn == 1 else f"topic{thread}"
            tests.append(
                {
                    "vars": {"q": f"topic{thread} question {turn}"},
                    "metadata": {"conversationId": f"thread{thread:02d}"},
                    "assert": [{"type": "icontains", "value": word}],
                }
            )
    flow = folder / name
    flow.write_text(yaml.safe_dump({"providers": ["openai:chat:gpt-4.1-mini"], "prompts": ["{{ q }}"], "tests": tests}))
    return flow


def _rtflow(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "rtflow", *args], cwd=folder, capture_output=True, text=True, timeout=120, env=env
    )


def _verdicts(db: Path) -> dict[str, tuple[str, str]]:
    """node id -> (status, answer) of the store's latest run."""
    with RunStore(db, read_only=True) as store:
        run = store.get_run("latest")
        return {t.node_id: (t.status, t.output.text if t.output else "") for t in store.turns(run.run_id)}


def test_three_shards_merged_equal_one_run_and_run_each_conversation_once(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    whole = _rtflow(tmp_path, "run", str(flow), "--sim", "--no-progress", "--db", "whole.db")
    assert whole.returncode == 1, whole.stderr  # one thread fails by design
    shards = []
    for index in (1, 2, 3):
        db = f"shard{index}.db"
        done = _rtflow(tmp_path, "run", str(flow), "--sim", "--no-progress", "--db", db, "--shard", f"{index}/3")
        assert done.returncode in (0, 1), done.stderr
        shards.append(_verdicts(tmp_path / db))
    ran = [set(shard) for shard in shards]
    assert all(ran) and sum(len(nodes) for nodes in ran) == len(set().union(*ran))  # disjoint, none empty
    merged = _rtflow(tmp_path, "merge", "shard1.db", "shard2.db", "shard3.db", "-o", "merged.db")
    assert merged.returncode == 0, merged.stderr
    assert "merged 3 runs" in merged.stdout and "23 passed, 1 failed" in merged.stdout
    # The same verdicts and the same answers (the simulator's `user messages: N` is each conversation's history)
    assert _verdicts(tmp_path / "merged.db") == _verdicts(tmp_path / "whole.db")
    with RunStore(tmp_path / "merged.db", read_only=True) as store:
        run = store.get_run("latest")
        turns = store.turns(run.run_id)
        assert run.total_turns == 2 * THREADS and len(turns) == 2 * THREADS
        assert all(turn.attempts == 1 and turn.run_id == run.run_id for turn in turns)  # each asked once
        assert store.summary(run.run_id).passed == 2 * THREADS - 1


def test_a_shard_is_the_same_in_every_process() -> None:
    """A stable hash, not Python's salted `hash`: another interpreter puts each id in the same shard."""
    ids = [f"openai:chat:gpt-4.1-mini/thread{n:02d}" for n in range(THREADS)]
    code = "import sys; from rtflow.plan.compiler import shard_of; print([shard_of(i, 3) for i in sys.argv[1:]])"
    other = subprocess.run([sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([shard_of(i, 3) for i in ids])
    assert {shard_of(i, 3) for i in ids} == {1, 2, 3}


def test_merge_refuses_a_turn_twice_and_says_a_shard_is_missing(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    for index in (1, 2):
        _rtflow(tmp_path, "run", str(flow), "--sim", "--no-progress", "--db", f"s{index}.db", "--shard", f"{index}/3")
    twice = _rtflow(tmp_path, "merge", "s1.db", "s1.db", "-o", "m.db")
    assert twice.returncode == 2 and "is given twice" in twice.stderr and "Traceback" not in twice.stderr
    _rtflow(tmp_path, "run", str(flow), "--sim", "--no-progress", "--db", "whole.db")  # every shard's turns again
    overlap = _rtflow(tmp_path, "merge", "s1.db", "whole.db", "-o", "m.db")
    assert overlap.returncode == 2 and "would count twice" in overlap.stderr
    partial = _rtflow(tmp_path, "merge", "s1.db", "s2.db", "-o", "m.db")
    assert partial.returncode == 0, partial.stderr
    assert "shard 3/3 is missing" in partial.stderr


def test_merge_refuses_runs_of_different_flows(tmp_path: Path) -> None:
    _rtflow(tmp_path, "run", str(_flow(tmp_path, "a.yaml")), "--sim", "--no-progress", "--db", "a.db", "--shard", "1/2")
    _rtflow(tmp_path, "run", str(_flow(tmp_path, "b.yaml")), "--sim", "--no-progress", "--db", "b.db", "--shard", "2/2")
    done = _rtflow(tmp_path, "merge", "a.db", "b.db", "-o", "m.db")
    assert done.returncode == 2 and "only runs of the same flow merge" in done.stderr


@pytest.mark.parametrize("shard", ["4/3", "0/3", "1/0", "two/3", "1"])
def test_a_bad_shard_is_a_clear_usage_error(tmp_path: Path, shard: str) -> None:
    done = _rtflow(tmp_path, "run", str(_flow(tmp_path)), "--sim", "--no-progress", "--shard", shard)
    assert done.returncode == 2 and "--shard" in done.stderr and "K/N" in done.stderr
