"""A resume finishes the run as it was started: its repeats, threads and vars come from the run's record (a
resume of a `--repeat 3` run without `--repeat` once ran only the first copy and called the run finished), and
an option given again that says otherwise is refused, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import rtflow
from rtflow.errors import FlowError


def _flow(folder: Path) -> Path:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }} {{ mood }}"],
        "execution": {"concurrency": 1, "retries": 0},
        "default_test": {"vars": {"mood": "neutral"}},
        "tests": [
            {"vars": {"q": "first question"}, "assert": [{"type": "icontains", "value": "never said"}]},
            *(
                {"vars": {"q": f"question {n}"}, "assert": [{"type": "icontains", "value": "question"}]}
                for n in range(3)
            ),
        ],
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_resume_finishes_every_copy_with_the_vars_it_began_with(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    stopped = rtflow.run(_flow(tmp_path), sim=True, db=db, repeat=3, fail_fast=True, vars={"mood": "calm"})
    assert stopped.counts["skipped"] > 0  # the first failure stopped it: copies and tests were left

    resumed = rtflow.run(None, sim=True, db=db, resume="latest")
    assert resumed.run.run_id == stopped.run.run_id
    assert resumed.run.total_turns == 12 and len(resumed.turns) == 12  # 4 tests x 3 copies, none left out
    assert "skipped" not in resumed.counts and resumed.counts["failed"] == 3  # the failing test, in each copy
    assert all((turn.output is not None and "calm" in turn.output.text) for turn in resumed.turns)

    with pytest.raises(FlowError, match=r"was started with repeat 3.*got 2"):
        rtflow.run(None, sim=True, db=db, resume="latest", repeat=2)
    with pytest.raises(FlowError, match=r"was started with vars \{'mood': 'calm'\}"):
        rtflow.run(None, sim=True, db=db, resume="latest", vars={"mood": "angry"})
