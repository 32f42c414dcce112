"""The README's examples run as written: its shell commands (but those that need a key, never end, or only
time things) and its Python example, offline against the simulator, from a fresh folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Examples that cannot run here: a real key, a server that runs until stopped, the install lines (the test
# environment is the install), benchmarks and the clip generator (timing and data tools, not features).
_NOT_RUN = re.compile(r"OPENAI_API_KEY=|sim serve|^pip install|^python (bench|scripts)/")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _shell_examples() -> list[str]:
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not _NOT_RUN.search(command):
                commands.append(command)
    return commands


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh folder holding the repository's flows, as a user's checkout would."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _env(workdir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(workdir)
    return env


def test_every_shell_example_runs(workdir: Path) -> None:
    """Each command of the README's bash blocks exits as the README says (0 for the example flows)."""
    commands = _shell_examples()
    assert any(command.startswith("rtflow run") for command in commands)
    for command in commands:
        if "| dot" in command and shutil.which("dot") is None:
            continue
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=_env(workdir), capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def test_the_python_example_runs(workdir: Path) -> None:
    """The README's Python block, as a program of its own."""
    (block,) = _blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "True" in done.stdout.splitlines()[-1]  # `result.passed`
