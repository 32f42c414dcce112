"""`rtflow run` as a person sees it: the real command in a real pseudo-terminal (tmux) 80 columns wide.

A flow in which some turns fail by design (an `equals` no simulated answer meets) runs against the simulator,
slowed down so that the progress bar is drawn for a moment. What the terminal shows at the end (its scrollback,
soft-wrapped lines joined) and every byte written to it are read back.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rtflow.cli import main
from rtflow.results.store import RunStore

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="needs tmux for a pseudo-terminal")

RTFLOW = Path(sys.executable).with_name("rtflow")
WIDTH = 80
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(debug|info|warning|error)\s*\] \S+ +\[rtflow\]")


def write_flow(folder: Path, threads: int, turns: int, failing: set[int]) -> Path:
    """`threads` conversations of `turns` turns; turn numbers in `failing` fail in every even-numbered thread."""
    never = [{"type": "equals", "value": "an answer the simulator never gives"}]
    always = [{"type": "icontains", "value": "you said"}]
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
        "prompts": ["{{ question }}"],
        "threads": {
            f"t{thread:02d}": [
                {
                    "question": f"question {turn} of thread {thread}",
                    "assert": never if thread % 2 == 0 and turn in failing else always,
                }
                for turn in range(1, turns + 1)
            ]
            for thread in range(threads)
        },
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass
class Terminal:
    """What the program left on the terminal and everything it wrote to it."""

    lines: list[str]
    """The screen and its scrollback, each line as the program wrote it (the terminal's own wrapping undone)."""
    written: str
    """Every character written to the terminal, escape sequences removed: frames drawn over each other."""


RunInTerminal = Callable[..., Terminal]


@pytest.fixture
def terminal_in(tmp_path: Path) -> Iterator[RunInTerminal]:
    """Runs `rtflow ARGS` in a fresh tmux server of its own, in `tmp_path`, 80 columns wide; yields a runner."""
    assert TMUX is not None
    server = [TMUX, "-L", f"rtflow-test-{uuid.uuid4().hex[:12]}", "-f", str(tmp_path / "tmux.conf")]
    (tmp_path / "tmux.conf").write_text("set -g history-limit 20000\n")
    environment = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES", "TMUX")}
    environment.pop("NO_COLOR", None)

    def run(*args: str, timeout: float = 60.0) -> Terminal:
        written = tmp_path / "written.log"
        # The command waits for a key, so that the terminal's output is recorded from its first byte.
        command = f"read _; {shlex.join([str(RTFLOW), *args])}; echo __exit $?; sleep 600"
        subprocess.run(
            [*server, "new-session", "-d", "-s", "run", "-x", str(WIDTH), "-y", "40", "-c", str(tmp_path), command],
            env=environment,
            check=True,
        )
        subprocess.run([*server, "pipe-pane", "-t", "run", "-o", f"cat > {shlex.quote(str(written))}"], check=True)
        subprocess.run([*server, "send-keys", "-t", "run", "Enter"], check=True)
        deadline = time.monotonic() + timeout
        while True:
            captured = subprocess.run(
                [*server, "capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "run"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "__exit " in captured or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        lines = [line.rstrip() for line in captured.splitlines()]
        return Terminal(lines, _ESCAPES.sub("", written.read_text(encoding="utf-8", errors="replace")))

    try:
        yield run
    finally:
        subprocess.run([*server, "kill-server"], check=False, capture_output=True)


def _table_headers(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines if line.startswith("provider ")]


def test_the_bar_counts_failures_and_the_summary_fits_80_columns(
    tmp_path: Path, terminal_in: RunInTerminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar shows failed turns as they come; the summary's headers stand whole in 80 columns; every failure up
    to ten is listed with why and what was said, then the command that shows them all, which does."""
    write_flow(tmp_path, threads=12, turns=4, failing={2, 4})  # 48 turns, 12 failing
    shown = terminal_in("run", "flow.yaml", "--sim", "--sim-latency-ms", "150", "--concurrency", "6")
    screen = "\n".join(shown.lines)
    assert "__exit 1" in screen, screen

    frames = re.findall(r"(\d+)/48 in flight \d+[^\n]*\n+passed (\d+) +failed (\d+) +error 0 +skipped 0", shown.written)
    assert any(int(done) < 48 and int(failed) > 0 for done, _, failed in frames), frames  # a failure, mid-run
    assert [line for line in shown.lines if "━" in line][-1].startswith("turns ")
    assert "passed 36  failed 12  error 0  skipped 0" in shown.lines

    assert _table_headers(shown.lines) == [
        ["provider", "passed", "failed", "error", "skipped", "fallbacks", "retries"],
        ["provider", "tokens", "cost", "$", "ttfd", "p50", "ttfd", "p95", "total", "p50", "total", "p95"],
    ]
    title = next(line for line in shown.lines if line.startswith("run ") and line.endswith("(simulated)"))
    counts = next(index for index, line in enumerate(shown.lines) if line.startswith("36 passed, 12 failed in "))
    summary = shown.lines[shown.lines.index(title) : counts]
    assert len(summary) >= 6 and all(len(line) <= WIDTH and "…" not in line for line in summary), summary

    run_id = title.split()[1]
    with RunStore(tmp_path / ".rtflow" / "rtflow.db", read_only=True) as store:
        assert store.list_runs(1)[0].run_id == run_id
    failures = [line for line in shown.lines if line.startswith("FAILED ")]
    assert failures[0] == "FAILED realtime/t00/2" and len(failures) == 10
    first = shown.lines.index(failures[0])
    assert shown.lines[first + 1].split()[:2] == ["why", "equals:"]
    said = next(line for line in shown.lines[first:] if line.startswith("  said "))
    assert said.startswith('  said You said: "question 2 of thread 0"')
    pointer = shown.lines.index("... and 2 more. All 12, with their conversations:")
    assert shown.lines[pointer + 1] == f"  rtflow show {run_id} --failed"

    monkeypatch.chdir(tmp_path)  # the command as printed: the store is the default one, where the run was started
    listed = CliRunner().invoke(main, shlex.split(shown.lines[pointer + 1])[1:])
    assert listed.exit_code == 0, listed.output
    assert "shown: 12 of 48 turns (failed or error), in 6 conversations" in listed.output


def test_verbose_log_lines_print_whole_above_the_bar(tmp_path: Path, terminal_in: RunInTerminal) -> None:
    """With -v on a terminal each log line stands whole on a line of its own, none lost, and the bar is left
    once, below them, never in their midst."""
    write_flow(tmp_path, threads=4, turns=3, failing={2})  # 12 turns, 2 failing
    shown = terminal_in("run", "flow.yaml", "--sim", "--sim-latency-ms", "150", "--concurrency", "2", "-v")
    screen = "\n".join(shown.lines)
    assert "__exit 1" in screen, screen

    logged = [line for line in shown.lines if "[rtflow]" in line]
    assert logged and all(_LOG_LINE.match(line) and "━" not in line for line in logged), screen
    finished = [line for line in logged if " node.finished " in line]
    assert len(finished) == 12, screen  # one per turn: none overwritten by the bar
    bars = [index for index, line in enumerate(shown.lines) if "━" in line]
    assert len(bars) == 1 and shown.lines[bars[0]].startswith("turns ") and "12/12" in shown.lines[bars[0]]
    assert shown.lines[bars[0] + 1] == "passed 10  failed 2  error 0  skipped 0"
    before_bar = [index for index, line in enumerate(shown.lines) if " node.finished " in line]
    assert max(before_bar) < bars[0]
