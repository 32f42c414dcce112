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


def test_rate_limits_written_as_text_are_numbers_to_the_scheduler(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`rpm: "6000"` and `tpm: "{{ env.TPM }}"` validate as numbers; the run goes (it crashed on the raw text)."""
    monkeypatch.setenv("RTFLOW_TEST_TPM", "1000000")
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "providers:\n  - id: openai:chat:gpt-4.1-mini\n    config: {rpm: '6000', tpm: '{{ env.RTFLOW_TEST_TPM }}'}\n"
        "prompts: ['{{ q }}']\ntests: [{vars: {q: hello}, assert: [{type: icontains, value: hello}]}]\n"
    )
    assert rtflow.run(flow, sim=True, db=tmp_path / "runs.db").passed
