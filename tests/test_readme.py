"""The README's examples run as written: its shell commands (but those that need a key, never end, or only
time things) and each of its Python blocks, offline against the simulator, from a fresh folder; its links lead
somewhere; and the provider config tables (README and docs/provider-config.md) agree with the providers' models."""

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

# Examples that cannot run here: a real key, servers that run until stopped (the simulator, the viewer: their
# own tests start them), the install lines (the test environment is the install), benchmarks and the clip
# generator (timing and data tools, not features).
_NOT_RUN = re.compile(r"OPENAI_API_KEY=|sim serve|^rtflow view|^pip install|^python (bench|scripts)/")

# Drawing an image needs Graphviz's `dot`, which a test machine may not have (the README says how to install it).
_NEEDS_GRAPHVIZ = re.compile(r"\| dot |^rtflow graph .* -o \S+\.(svg|png|pdf)\b")


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
        if _NEEDS_GRAPHVIZ.search(command) and shutil.which("dot") is None:
            continue
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=_env(workdir), capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("position", range(len(_blocks("python"))))
def test_each_python_example_runs(workdir: Path, position: int) -> None:
    """Each of the README's Python blocks, as a program of its own; one that prints `result.passed` prints True."""
    block = _blocks("python")[position]
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{block}\n{done.stderr}"
    if "print(result.passed" in block:
        assert done.stdout.startswith("True") or "\nTrue" in done.stdout, done.stdout


def test_the_python_examples_cover_the_api() -> None:
    """The Python blocks show `run`, `arun` with the simulator, `on_turn`, the result's members, `load` and
    `compile`."""
    python = "\n".join(_blocks("python"))
    for shown in (
        "rtflow.run(",
        "sim=True, on_turn=",
        "rtflow.arun(",
        "result.failures",
        "result.provider_summaries",
        "result.summary",
        "result.counts",
        "result.exit_code",
        "rtflow.load(",
        "rtflow.compile(",
        "plan.counts",
    ):
        assert shown in python, shown


def test_every_relative_link_leads_to_a_file() -> None:
    """The README's and the docs' links to files of the repository (and their anchors) resolve."""
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            assert linked.is_file(), f"{document.name}: {target}"
            if anchor:
                assert anchor in _anchors(linked.read_text()), f"{document.name}: {target}"


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _config_tables() -> dict[str, list[tuple[list[str], set[str]]]]:
    """Per document, each provider config table row: its keys, and the providers marked as accepting them."""
    found: dict[str, list[tuple[list[str], set[str]]]] = {}
    for document in (ROOT / "README.md", ROOT / "docs" / "provider-config.md"):
        rows: list[tuple[list[str], set[str]]] = []
        header: list[str] | None = None
        for line in document.read_text().splitlines():
            if not line.startswith("|"):
                header = None
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
                continue
            if not {"R", "C", "L"} <= set(header) and not {"Realtime", "Chat", "Live"} <= set(header):
                continue
            if set(cells[0]) <= {"-", ":"}:
                continue
            columns = {"Realtime": "R", "Chat": "C", "Live": "L"}
            marked = {
                name
                for name, short in columns.items()
                if cells[header.index(short if short in header else name)] in ("✓", "·")
            }
            rows.append((re.findall(r"`([a-z_]+)`", cells[0]), marked))
        found[document.name] = rows
    return found


def test_the_provider_config_tables_match_the_providers() -> None:
    """docs/provider-config.md has a row for every config key of the Realtime, Chat and Live providers, and every
    row there and in the README marks exactly the providers that accept the key."""
    from rtflow.providers.live_wire import LiveConfig
    from rtflow.providers.openai_chat import ChatConfig
    from rtflow.providers.realtime_events import RealtimeConfig

    models = {"Realtime": RealtimeConfig, "Chat": ChatConfig, "Live": LiveConfig}
    accepting: dict[str, set[str]] = {}
    for provider, model in models.items():
        for key in model.model_fields:
            accepting.setdefault(key, set()).add(provider)
    tables = _config_tables()
    documented = {key for keys, _ in tables["provider-config.md"] for key in keys}
    assert documented == set(accepting), f"missing {set(accepting) - documented}, unknown {documented - set(accepting)}"
    for document, rows in tables.items():
        assert rows, document
        for keys, marked in rows:
            for key in keys:
                assert marked == accepting.get(key), (
                    f"{document}: {key} is marked {marked}, taken by {accepting.get(key)}"
                )
