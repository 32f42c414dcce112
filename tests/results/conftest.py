"""Fixtures shared by the results tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from results_samples import make_run, make_turns

from rtflow.results.records import RunRecord, TurnRecord


@pytest.fixture
def run_record() -> RunRecord:
    """The sample run."""
    return make_run()


@pytest.fixture
def turn_records(tmp_path: Path) -> list[TurnRecord]:
    """The sample turns, with real WAV files for the audio turn."""
    return make_turns(tmp_path / "audio")
