"""What the viewer's tests share: small flows run against the simulator, and `rtflow view` as a subprocess.

The simulator echoes the question (`You said: "..."`), so an assertion that looks for a word the question does
not hold fails by design; changing that word between two runs changes the verdict of one test.
"""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

import rtflow
from rtflow import RunResult

QUESTIONS = {
    "geography": "What is the capital of France?",
    "fruit": "Name a purple fruit",
    "weather": "Is it sunny today?",
}


def write_flow(path: Path, checks: dict[str, str], *, concurrency: int | None = None) -> Path:
    """A flow of one turn per conversation of `checks` (conversation -> the word its answer must hold)."""
    flow: dict[str, object] = {
        "description": "A small suite for the viewer",
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime", "config": {"modalities": ["text"]}}],
        "prompts": ["{{ question }}"],
        "tests": [
            {
                "vars": {"question": QUESTIONS.get(conversation, f"Question {conversation} about the capital")},
                "metadata": {"conversationId": conversation},
                "assert": [{"type": "icontains", "value": word}],
            }
            for conversation, word in checks.items()
        ],
        "execution": {"retries": 0, **({"concurrency": concurrency} if concurrency else {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(flow, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class TwoRuns:
    """Two finished runs in one store: the second changes one test's verdict from passed to failed."""

    db: Path
    baseline: RunResult
    """geography and weather pass, fruit fails: 2 of 3."""
    current: RunResult
    """weather passes, geography and fruit fail: 1 of 3 (geography newly failing)."""


def two_finished_runs(folder: Path) -> TwoRuns:
    db = folder / "store" / "rtflow.db"
    first = write_flow(folder / "flow.yaml", {"geography": "capital", "fruit": "zanzibar", "weather": "sunny"})
    second = write_flow(folder / "flow-v2.yaml", {"geography": "paris", "fruit": "zanzibar", "weather": "sunny"})
    baseline = rtflow.run(first, sim=True, db=db)
    current = rtflow.run(second, sim=True, db=db)
    return TwoRuns(db, baseline, current)


@dataclass
class Viewer:
    """A running `rtflow view` and the address it printed."""

    process: subprocess.Popen[str]
    url: str
    stderr: str = ""
    """What it wrote to stderr, once stopped."""

    def stop(self) -> int:
        """Ctrl-C, as a person would stop it; killed if it does not stop. Its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, self.stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        return self.process.returncode


def start_viewer(db: Path, *options: str, cwd: Path) -> Viewer:
    """`python -m rtflow view --db DB OPTIONS` (`--port 0` unless OPTIONS name a port), once it printed its address."""
    port = () if "--port" in options else ("--port", "0")
    command = [sys.executable, "-m", "rtflow", "view", "--db", str(db), *port, *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    viewer = Viewer(process, "")
    try:
        viewer.url = _first_line(process, timeout_s=20).removeprefix("rtflow view: ")
    except BaseException:
        viewer.stop()
        raise
    return viewer


def _first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"rtflow view printed nothing in {timeout_s} s")
    line = process.stdout.readline().strip()
    assert line, f"rtflow view ended first: {process.wait()} {process.stderr.read() if process.stderr else ''}"
    return line


def wait_for_run(db: Path, timeout_s: float = 30.0) -> str:
    """The id of the first run the store at `db` holds, once it holds one."""
    from rtflow.errors import StoreError
    from rtflow.results.store import RunStore

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with RunStore(db, read_only=True) as store:
                runs = store.list_runs(1)
        except StoreError:  # the writer is creating the file at this moment
            runs = []
        if runs:
            return runs[0].run_id
        time.sleep(0.05)
    raise AssertionError(f"no run appeared in {db} within {timeout_s} s")
