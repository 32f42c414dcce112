"""`rtflow init`: a small project that runs at once, offline; nothing overwritten; the examples listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _rtflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "rtflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_init_then_run_sim_passes(tmp_path: Path) -> None:
    made = _rtflow("init", "museum", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "museum"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "flow.yaml", "prompt.txt", "tools.py"]
    assert "rtflow run flow.yaml --sim" in made.stdout
    ran = _rtflow("run", "flow.yaml", "--sim", "--db", str(tmp_path / "runs.db"), cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 passed" in ran.stdout


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("mine\n")
    refused = _rtflow("init", cwd=tmp_path)
    assert refused.returncode == 2 and "not overwriting" in refused.stderr and "flow.yaml" in refused.stderr
    assert (tmp_path / "flow.yaml").read_text() == "mine\n"
    assert not (tmp_path / "tools.py").exists()  # nothing written at all


def test_init_lists_examples_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    listed = _rtflow("init", "--list", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith("starter")
    unknown = _rtflow("init", "x", "--example", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no such example" in unknown.stderr and "starter" in unknown.stderr
