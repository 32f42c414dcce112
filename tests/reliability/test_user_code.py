"""A flow's own Python (prompt functions, `python` assertions, regexes, tool handlers) cannot hang or end a run.

One `rtflow run --sim` subprocess runs a flow in which each thread's code misbehaves in one way: it sleeps, spins,
exits, raises KeyboardInterrupt, backtracks forever, or never returns from a tool. Each misbehaviour must become
that turn's error (or a failed assertion) that names the function and what it did; the well-behaved thread
passes; and the process exits soon after its 3 s deadlines, though the abandoned threads are still running. The
subprocess has a timeout of its own, so a regression fails these tests instead of hanging them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from rtflow.results.records import TurnRecord
from rtflow.results.store import RunStore
from rtflow.user_code import UserCodeError, call_user_code, exit_past_stuck_calls, stuck_calls

RUN_DEADLINE_S = 40.0
"""The whole subprocess, startup included, must end within this; it takes about 5 s."""

PROMPT = """
import sys
import time


def build(context):
    mode = context["vars"].get("mode")
    if mode == "sleep":
        time.sleep(3600)
    elif mode == "spin":
        while True:
            pass
    elif mode == "exit":
        sys.exit(3)
    elif mode == "interrupt":
        raise KeyboardInterrupt
    return context["vars"]["question"]
"""

CHECKS = """
import sys
import time


def sleepy(output, context):
    time.sleep(3600)


def exits(output, context):
    sys.exit("bye")
"""

TOOLS = """
import time


def stall(args):
    time.sleep(3600)
"""

STALL_TOOL = {"type": "function", "name": "stall_lookup", "parameters": {"type": "object", "properties": {}}}

THREADS: dict[str, list[dict[str, Any]]] = {
    "good": [
        {"question": "first good question", "assert": [{"type": "icontains", "value": "first good"}]},
        {"question": "second good question", "assert": [{"type": "icontains", "value": "second good"}]},
    ],
    "prompt_sleeps": [{"question": "q", "mode": "sleep"}],
    "prompt_spins": [{"question": "q", "mode": "spin"}],
    "prompt_exits": [{"question": "q", "mode": "exit"}],
    "prompt_interrupts": [{"question": "q", "mode": "interrupt"}],
    "assertion_sleeps": [{"question": "q", "assert": [{"type": "python", "value": "file://checks.py:sleepy"}]}],
    "assertion_exits": [{"question": "q", "assert": [{"type": "python", "value": "file://checks.py:exits"}]}],
    "assertion_interrupts": [
        {"question": "q", "assert": [{"type": "python", "value": "if output:\n    raise KeyboardInterrupt\nreturn 1"}]}
    ],
    "regex": [
        {
            "question": "a" * 40 + "!",
            "assert": [{"type": "regex", "value": "(a|aa)+$"}, {"type": "not-regex", "value": "(a+)+$"}],
        }
    ],
    "tool_hangs": [{"question": "please stall", "assert": [{"type": "icontains", "value": "opening hours"}]}],
}


@dataclass(frozen=True)
class Run:
    """What the subprocess left: its exit code, its output, how long it took, and every turn it stored."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    turns: dict[str, list[TurnRecord]]
    """Each thread's turns, in order, by thread id."""

    def turn(self, thread: str) -> TurnRecord:
        """The one turn of a misbehaving thread."""
        (only,) = self.turns[thread]
        return only


def _write_flow(folder: Path) -> Path:
    (folder / "prompt.py").write_text(PROMPT)
    (folder / "checks.py").write_text(CHECKS)
    (folder / "tools.py").write_text(TOOLS)
    document = {
        "providers": [
            {
                "id": "openai:chat:gpt-4.1-mini",
                "label": "chat",
                "config": {
                    "tools": [STALL_TOOL],
                    "function_handlers": {"stall_lookup": "file://tools.py:stall"},
                    "tool_timeout": "500ms",
                },
            }
        ],
        "prompts": ["file://prompt.py:build"],
        "threads": THREADS,
        "execution": {"timeout": "3s", "retries": 0},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The flow, run once by the command line against the simulator, under a deadline of its own."""
    folder = tmp_path_factory.mktemp("user_code")
    db = folder / "runs.db"
    command = [sys.executable, "-m", "rtflow.cli", "run", str(_write_flow(folder)), "--sim", "--sim-latency-ms", "0"]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*command, "--db", str(db), "--no-progress"],
            capture_output=True,
            text=True,
            cwd=folder,
            timeout=RUN_DEADLINE_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`rtflow run` did not exit within {RUN_DEADLINE_S:g} s; stderr: {exc.stderr!r}")
    seconds = time.monotonic() - started
    with RunStore(db, read_only=True) as store:
        run_id = store.latest_run_id()
        assert run_id is not None, done.stderr
        turns: dict[str, list[TurnRecord]] = {}
        for turn in store.turns(run_id):
            turns.setdefault(turn.thread_id, []).append(turn)
    return Run(done.returncode, done.stdout, done.stderr, seconds, turns)


def _error(run: Run, thread: str) -> str:
    turn = run.turn(thread)
    assert turn.status == "error" and turn.error is not None, turn
    assert turn.error.kind == "prompt"
    return turn.error.message


def _assertion_error(run: Run, thread: str, position: int = 0) -> str:
    turn = run.turn(thread)
    assert turn.status == "failed", turn
    result = turn.assertions[position]
    assert not result.passed and result.error is not None, result
    return result.error


# -------------------------------------------------------------------------------------------- the whole run


def test_the_run_exits_soon_after_its_deadlines_without_a_traceback(run: Run) -> None:
    """Abandoned threads still sleep and spin, yet the process exits (1: some turns failed) and prints no traceback."""
    assert run.returncode == 1, run.stderr
    assert run.seconds < 20, f"the run took {run.seconds:.1f} s"
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    assert "prompt function prompt.py:build did not return within 3 s" in run.stdout  # the summary's failure lines


def test_the_well_behaved_thread_passes(run: Run) -> None:
    """The other conversations are not held up: both turns of the good thread pass."""
    assert [(turn.turn_index, turn.status) for turn in run.turns["good"]] == [(0, "passed"), (1, "passed")]


# --------------------------------------------------------------------------------------- prompt functions


def test_a_sleeping_prompt_function_is_the_turns_error(run: Run) -> None:
    """`time.sleep(3600)` in a prompt function: the turn errors at the run's 3 s timeout, naming file:function."""
    assert _error(run, "prompt_sleeps") == "prompt function prompt.py:build did not return within 3 s"


def test_a_spinning_prompt_function_is_the_turns_error(run: Run) -> None:
    """A busy loop holds no lock rtflow needs: the turn errors at its deadline like a sleeping one."""
    assert _error(run, "prompt_spins") == "prompt function prompt.py:build did not return within 3 s"


def test_system_exit_in_a_prompt_function_is_the_turns_error(run: Run) -> None:
    """`sys.exit(3)` ends neither the run nor the process: it is the turn's error."""
    assert _error(run, "prompt_exits") == (
        "prompt function prompt.py:build called sys.exit(3); user code may not end the run"
    )


def test_keyboard_interrupt_in_a_prompt_function_is_the_turns_error(run: Run) -> None:
    """A KeyboardInterrupt raised by the function is not a Ctrl-C: the turn errors, the run goes on."""
    assert _error(run, "prompt_interrupts") == (
        "prompt function prompt.py:build raised KeyboardInterrupt; user code may not end the run"
    )


# ------------------------------------------------------------------------------------ python assertions


def test_a_sleeping_python_assertion_fails_with_its_reason(run: Run) -> None:
    """A python assertion past the run's timeout fails the turn with an error naming it."""
    assert _assertion_error(run, "assertion_sleeps") == "python assertion checks.py:sleepy did not return within 3 s"


def test_system_exit_in_a_python_assertion_fails_it(run: Run) -> None:
    """`sys.exit("bye")` in an assertion function is that assertion's error."""
    assert _assertion_error(run, "assertion_exits") == (
        "python assertion checks.py:exits called sys.exit('bye'); user code may not end the run"
    )


def test_keyboard_interrupt_in_an_inline_python_assertion_fails_it(run: Run) -> None:
    """Inline code raising KeyboardInterrupt is that assertion's error."""
    assert _assertion_error(run, "assertion_interrupts") == (
        "python assertion raised KeyboardInterrupt; user code may not end the run"
    )


# ---------------------------------------------------------------------------------------- regex, tools


def test_a_catastrophic_regex_fails_within_its_time_limit(run: Run) -> None:
    """`(a|aa)+$` against forty a's and a `!` errors naming the pattern; `(a+)+$` is answered at once by `regex`."""
    message = _assertion_error(run, "regex")
    assert message.startswith("regular expression '(a|aa)+$' did not finish searching the output within 1 s")
    quick = run.turn("regex").assertions[1]
    assert quick.passed and quick.reason == "not: no match for /(a+)+$/"


def test_a_hung_tool_handler_is_abandoned_and_the_turn_goes_on(run: Run) -> None:
    """A sync handler that never returns is abandoned at `tool_timeout`; the model hears why; the assertion fails."""
    turn = run.turn("tool_hangs")
    assert turn.output is not None and turn.status == "failed"
    (call,) = turn.output.tool_calls
    expected = "tool 'stall_lookup' handler tools.py:stall did not return within 0.5 s"
    assert call.error == expected and expected in turn.output.text


# ------------------------------------------------------------------------------------------------ SIGTERM


SLEEPER = """
import pathlib
import time


def build(context):
    pathlib.Path("started").touch()
    time.sleep(3600)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_a_run_stuck_in_a_prompt_function(tmp_path: Path) -> None:
    """The loop is free while user code sleeps, so SIGTERM interrupts the run (exit 130) long before its timeout."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["file://sleeper.py:build"],
        "tests": [{"vars": {"question": "q"}}],
        "execution": {"timeout": "60s"},
    }
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(document))
    command = [sys.executable, "-m", "rtflow.cli", "run", "flow.yaml", "--sim", "--db", "runs.db", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + RUN_DEADLINE_S
        while not (tmp_path / "started").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the prompt function was never called"
            time.sleep(0.05)
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("`rtflow run` did not exit within 15 s of SIGTERM")
    finally:
        process.kill()  # a no-op once it exited
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


# ------------------------------------------------------------------------------ call_user_code, in process


@pytest.mark.anyio
async def test_sync_code_runs_off_the_event_loop_and_async_code_is_awaited() -> None:
    """A sync function runs in a worker thread, an async one in the loop; each result comes back."""

    async def in_loop(value: int) -> int:
        await anyio.sleep(0)
        return value * 2

    thread = await call_user_code(threading.current_thread, deadline_s=5, what="probe")
    assert thread is not threading.current_thread()
    assert await call_user_code(in_loop, 21, deadline_s=5, what="doubler") == 42


def _raiser(exception: BaseException) -> Callable[[], None]:
    def raising() -> None:
        raise exception

    return raising


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (SystemExit(2), "called sys.exit(2); user code may not end the run"),
        (KeyboardInterrupt(), "raised KeyboardInterrupt; user code may not end the run"),
        (ValueError("bad input"), "raised ValueError: bad input"),
        (LookupError(), "raised LookupError"),
    ],
)
async def test_what_user_code_raises_becomes_one_error_type(exception: BaseException, reason: str) -> None:
    """Exceptions, SystemExit and KeyboardInterrupt, sync or async, become a UserCodeError keeping the cause."""

    async def raising_async() -> None:
        raise exception

    for function in (_raiser(exception), raising_async):
        with pytest.raises(UserCodeError) as caught:
            await call_user_code(function, deadline_s=5, what="handler x.py:f")
        assert caught.value.message == f"handler x.py:f {reason}" and caught.value.__cause__ is exception


@pytest.mark.anyio
async def test_a_sync_call_past_its_deadline_is_abandoned_and_counted_until_it_returns() -> None:
    """The caller gets a timeout at the deadline; the thread counts as stuck until its function returns at last."""
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(UserCodeError) as caught:
        await call_user_code(release.wait, 10, deadline_s=0.2, what="prompt function p.py:slow")
    assert time.monotonic() - started < 2
    assert caught.value.timed_out and str(caught.value) == "prompt function p.py:slow did not return within 0.2 s"
    assert stuck_calls() == ["prompt function p.py:slow"]
    release.set()
    with anyio.fail_after(5):
        while stuck_calls():
            await anyio.sleep(0.01)
    exit_past_stuck_calls(0)  # nothing is stuck any more: it returns instead of ending pytest


@pytest.mark.anyio
async def test_a_cancelled_wait_is_not_the_functions_fault() -> None:
    """Cancelled from outside (the run stopping), the call raises the cancellation, not a UserCodeError."""
    release = threading.Event()
    with anyio.move_on_after(0.1) as scope:
        await call_user_code(release.wait, 10, deadline_s=30, what="tool 't' handler t.py:t")
    assert scope.cancelled_caught and stuck_calls() == ["tool 't' handler t.py:t"]
    release.set()
    with anyio.fail_after(5):
        while stuck_calls():
            await anyio.sleep(0.01)
