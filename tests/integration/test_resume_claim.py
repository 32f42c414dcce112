"""Two resumes of one run cannot both run its remaining turns: the second is refused, naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
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


def _real_endpoints_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key so the run may start, and a closed loopback port in place of the real API: nothing leaves."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-resume-0000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")


def test_resuming_a_simulated_run_against_real_endpoints_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    first = rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=db)
    assert first.run.simulated and set(first.run.endpoints.values()) == {"sim"}
    _real_endpoints_unreachable(monkeypatch)
    with pytest.raises(rtflow.FlowError) as refused:
        rtflow.run(None, db=db, resume="latest")
    message = str(refused.value)
    assert f"refusing to resume run {first.run.run_id}" in message
    assert "was simulated (--sim) and would now go to the real endpoints" in message and "--force" in message
    with RunStore(db) as store:  # the refusal changed nothing on record
        assert store.get_run("latest").endpoints == first.run.endpoints


def test_a_forced_resume_goes_ahead_and_says_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "runs.db"
    rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=db)
    _real_endpoints_unreachable(monkeypatch)
    resumed = rtflow.run(None, db=db, resume="latest", force=True)
    changes = resumed.run.options["resumed_with_changes"]
    assert any("would now go to the real endpoints" in change for change in changes), changes
    assert "http://127.0.0.1:9/v1" in resumed.run.endpoints.values()


def test_resuming_with_the_same_endpoints_needs_no_force(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=db)
    resumed = rtflow.run(None, sim=True, db=db, resume="latest")
    assert resumed.passed and "resumed_with_changes" not in resumed.run.options


def test_the_cli_refuses_the_switch_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    rtflow.run(ROOT / "flows" / "conversation.yaml", sim=True, db=db)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-resume-0000", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    done = subprocess.run(
        [sys.executable, "-m", "rtflow", "run", "--resume", "latest", "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "refusing to resume run" in done.stderr and "--force" in done.stderr
