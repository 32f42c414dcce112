"""Outputs the run could not write are refused before the first request: nothing is run, or paid for, in vain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    sim_log = tmp_path / "sim.jsonl"
    command = [sys.executable, "-m", "rtflow.cli", "run", str(ROOT / "flows" / "conversation.yaml"), "--sim"]
    command += ["--no-progress", "--db", str(tmp_path / "runs.db"), "--sim-log", str(sim_log), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["-o", "results.txt"],
            "-o results.txt: unknown export format '.txt'; use .json, .jsonl, .csv, .html, .xml, .md",
        ),
        (["-o", "blocker/out.json"], "blocker is a file, not a folder"),
        (["--log-file", "blocker/run.log"], "blocker is a file, not a folder"),
        (["-o", "."], "File '.' is a directory"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    done = _run(tmp_path, *options)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "sim.jsonl").exists() or "response.create" not in (tmp_path / "sim.jsonl").read_text()


def test_an_unwritable_artifacts_folder_is_refused_as_what_it_is(tmp_path: Path) -> None:
    """A file where the artifacts folder goes is a local problem, named as such, not a provider failure."""
    (tmp_path / "artifacts").write_text("not a folder")
    done = _run(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the artifacts folder" in done.stderr and "is a file, not a folder" in done.stderr
