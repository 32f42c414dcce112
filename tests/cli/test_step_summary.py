"""`rtflow run` under GitHub Actions: the Markdown summary is appended to `$GITHUB_STEP_SUMMARY`, and a summary
that cannot be written is a warning, never a failed run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

FLOW = {
    "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
    "prompts": ["{{ question }}"],
    "threads": {"a": [{"question": "first", "assert": [{"type": "icontains", "value": "you said"}]}]},
}


def _run(folder: Path, step_summary: Path | None) -> subprocess.CompletedProcess[str]:
    """`rtflow run FLOW --sim` in a subprocess, with `GITHUB_STEP_SUMMARY` set to `step_summary` or unset."""
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(FLOW))
    env = {name: value for name, value in os.environ.items() if name != "GITHUB_STEP_SUMMARY"}
    if step_summary is not None:
        env["GITHUB_STEP_SUMMARY"] = str(step_summary)
    return subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "run", str(flow), "--sim", "--no-progress", "--db", str(folder / "r.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=folder,
    )


def test_the_summary_is_appended_to_the_step_summary(tmp_path: Path) -> None:
    """What earlier steps wrote stays; the run's title and provider table follow it."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("## an earlier step\n", encoding="utf-8")
    done = _run(tmp_path, summary)
    assert done.returncode == 0, done.stdout + done.stderr
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## an earlier step\n# rtflow run ")
    assert "100.0% passed" in text and "| realtime | 1 | 0 | 0 | 0 |" in text
    assert "GITHUB_STEP_SUMMARY" not in done.stderr


def test_an_unwritable_step_summary_is_a_warning(tmp_path: Path) -> None:
    """A step summary that names a folder: a warning on stderr, and the run's own exit code."""
    done = _run(tmp_path, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: cannot append the summary to $GITHUB_STEP_SUMMARY" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_variable_nothing_is_said(tmp_path: Path) -> None:
    """Off GitHub Actions the run says nothing about a step summary."""
    done = _run(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary to" not in done.stderr and "GITHUB_STEP_SUMMARY" not in done.stdout + done.stderr
