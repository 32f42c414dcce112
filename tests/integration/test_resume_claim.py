"""Two resumes of one run cannot both run its remaining turns: the second is refused, naming the first."""

from __future__ import annotations

from pathlib import Path

import pytest

import rtflow
from rtflow.errors import StoreError
from rtflow.results.store import RunStore

ROOT = Path(__file__).resolve().parents[2]


def test_a_resume_of_a_run_already_claimed_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=db)
    # The claim stands for another process resuming the run; flock refuses a second open file alike.
    with (
        RunStore(db) as store,
        store.claim_run(first.run.run_id),
        pytest.raises(StoreError, match="is being run by another process"),
    ):
        rtflow.run(None, sim=True, db=db, resume="latest")
    assert rtflow.run(None, sim=True, db=db, resume="latest").passed  # once released, a resume goes ahead
