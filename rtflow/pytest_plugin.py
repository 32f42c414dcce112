"""A pytest plugin: flow files are collected as tests, one test per thread.

```bash
pytest flows/ --rtflow-sim          # every thread of every flow, against the local simulator
pytest flows/ -k japan_travel       # one thread (OPENAI_API_KEY set: the real endpoints)
```

Registered under the `pytest11` entry point as `rtflow` (`-p no:rtflow` turns it off).

- **What is collected.** YAML files whose path ends like one of the globs of the `rtflow_flows` ini option (or
  of `--rtflow-glob`, which may be given more than once and then replaces the ini option). A glob is matched
  against the end of the path as `pathlib.PurePath.match` matches it, so `*` stays inside one folder. The
  default, `flows/*.yaml flows/*.yml`, takes the files directly in a folder called `flows` and nothing else: a
  project's other YAML (fixtures, CI files, invalid flows kept for tests) is never read. A YAML file named on
  the command line is collected whatever the globs say. A file that fails to load or compile is a collection
  error that shows the loader's own message.
- **Items.** One item per thread (a `threads:` key, a `metadata.conversationId`, or `test-<n>`), named by its
  id: `flows/conversation.yaml::japan_travel`, so `-k japan_travel` picks it. A thread runs once per provider
  and prompt of the flow, and `--rtflow-repeat N` times each (rtflow's `repeat`). All of those conversations
  belong to the one item, which passes only when every turn of every one of them passed; a failure shows each
  conversation that did not pass (`realtime/japan_travel#2` is the second copy on provider `realtime`). Items
  are not split by provider or copy because a run can be narrowed to threads only: an item per provider that
  `-k` deselected would still be run.
- **One run per file.** The first item of a file to run starts one `rtflow.run` for all of that file's items
  that pytest kept after `-k`, `-m`, `--lf` and other deselection (`only_threads` narrows it to exactly those);
  the other items read their verdicts from it. With `-x` the run of the failing item's file has already covered
  that file's other kept items, but no later file is run. The run's time is the first item's duration (and
  counts against a per-test timeout).
- **Where it runs.** `--rtflow-sim` runs offline against the embedded simulator; without it the flow's real
  endpoints are used, and a run that cannot start (no API key) fails each of its items with the library's
  message. Runs are kept in the run store as `rtflow run` keeps them (`RTFLOW_DB`, else `.rtflow/rtflow.db`),
  so `rtflow show RUN` shows a failing item's run in full; the run id is the item's `rtflow_run` property
  (a JUnit XML property too).

The module is loaded by every pytest session where rtflow is installed, so it imports only pytest and the
standard library at import time; rtflow's own modules are imported when a flow file is collected.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rtflow import FlowSpec, RtflowError, RunResult, TurnRecord

__all__ = ["DEFAULT_FLOW_GLOBS", "FlowFile", "ThreadItem"]

DEFAULT_FLOW_GLOBS = ("flows/*.yaml", "flows/*.yml")
_YAML_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rtflow", "rtflow flow files")
    group.addoption(
        "--rtflow-glob",
        action="append",
        dest="rtflow_glob",
        metavar="GLOB",
        help="Collect YAML files whose path ends like GLOB as flows (repeatable; replaces the rtflow_flows "
        f"ini option; default: {' '.join(DEFAULT_FLOW_GLOBS)}).",
    )
    group.addoption(
        "--rtflow-sim",
        action="store_true",
        dest="rtflow_sim",
        help="Run flows against rtflow's local simulator: no API key, no network, no cost.",
    )
    group.addoption(
        "--rtflow-sim-realtime-audio",
        action="store_true",
        dest="rtflow_sim_realtime_audio",
        help="With --rtflow-sim: spoken answers arrive at the rate they play, as live (a flow that cuts answers by "
        "what was heard gets it without asking).",
    )
    group.addoption(
        "--rtflow-sim-cancel-delay-ms",
        type=float,
        dest="rtflow_sim_cancel_delay_ms",
        metavar="MS",
        help="With --rtflow-sim: how long an answer goes on after response.cancel.",
    )
    group.addoption(
        "--rtflow-sim-latency-ms",
        type=float,
        dest="rtflow_sim_latency_ms",
        metavar="MS",
        help="With --rtflow-sim: time to each answer's first delta.",
    )
    group.addoption(
        "--rtflow-repeat",
        type=int,
        dest="rtflow_repeat",
        metavar="N",
        help="Run each conversation of a flow N times (default: the flow's execution.repeat); a thread's test "
        "passes only if every copy passed.",
    )
    parser.addini(
        "rtflow_flows",
        type="args",
        default=list(DEFAULT_FLOW_GLOBS),
        help="Globs (matched against the end of a YAML file's path) of the flow files to collect.",
    )


def _simulator_settings(config: pytest.Config) -> bool | dict[str, Any]:
    """False for the real endpoints, else the simulator's settings (as `rtflow.run(sim=...)` takes them)."""
    if not config.getoption("rtflow_sim"):
        return False
    voice: dict[str, Any] = {}
    if config.getoption("rtflow_sim_realtime_audio"):
        voice["realtime_audio"] = True
    if config.getoption("rtflow_sim_cancel_delay_ms") is not None:
        voice["cancel_delay_ms"] = config.getoption("rtflow_sim_cancel_delay_ms")
    latency = config.getoption("rtflow_sim_latency_ms")
    return {"voice": voice, **({"latency": {"first_delta_ms": latency}} if latency is not None else {})}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> FlowFile | None:
    if file_path.suffix not in _YAML_SUFFIXES:  # every file of a session passes here: the cheap test first
        return None
    if parent.session.isinitpath(file_path) or _is_flow_path(file_path, _flow_globs(parent.config)):
        return FlowFile.from_parent(parent, path=file_path)
    return None


def _flow_globs(config: pytest.Config) -> list[str]:
    given: list[str] | None = config.getoption("rtflow_glob")
    return given or list(config.getini("rtflow_flows"))


def _is_flow_path(path: Path, globs: Iterable[str]) -> bool:
    return any(PurePath(path).match(pattern) for pattern in globs)


class FlowTestFailure(Exception):
    """A thread that did not pass, or a run that could not start: its text is the whole report."""


class FlowFile(pytest.File):
    """A flow file: one item per thread, and one run (per thread pattern) for the items that are kept."""

    spec: FlowSpec
    thread_ids: list[str]
    _outcomes: dict[str, RunResult | RtflowError] | None = None
    _run_started = False

    def collect(self) -> Iterator[ThreadItem]:
        import rtflow

        self.spec = rtflow.load(self.path)
        plan = rtflow.compile(self.spec)  # a flow that cannot run is one collection error, not one per thread
        self.thread_ids = list(dict.fromkeys(conversation.thread_id for conversation in plan.conversations.values()))
        for thread_id in self.thread_ids:
            yield ThreadItem.from_parent(self, name=thread_id)

    # Collector narrows Node's signature (no `style`), and pytest ignores the override check there too.
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from rtflow import RtflowError

        if isinstance(excinfo.value, RtflowError):  # the loader names the file, line and key: no traceback
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def outcome(self, thread_id: str) -> RunResult | RtflowError:
        """The run that covered `thread_id`, or the error that stopped it; the runs start on the first call."""
        if self._outcomes is None:
            if self._run_started:  # it raised: the first item showed the traceback, and a second try would too
                raise FlowTestFailure(f"the run of {self.path.name} crashed: see the first of its tests that failed")
            self._run_started = True
            kept = [item.name for item in self.session.items if item.parent is self]
            self._outcomes = self._run(kept)
        return self._outcomes[thread_id]

    def _run(self, kept: list[str]) -> dict[str, RunResult | RtflowError]:
        """One run of the flow for every kept thread (all of them: no filter, so the run's record says so)."""
        import anyio

        import rtflow

        only = None if set(kept) >= set(self.thread_ids) else kept
        outcome: RunResult | RtflowError
        try:
            outcome = anyio.run(
                functools.partial(
                    rtflow.arun,
                    self.spec,
                    sim=_simulator_settings(self.config),
                    only_threads=only,
                    repeat=self.config.getoption("rtflow_repeat"),
                )
            )
        except rtflow.RtflowError as exc:  # the verdict of every item of the file
            outcome = exc
        return dict.fromkeys(kept, outcome)


class ThreadItem(pytest.Item):
    """One thread of a flow: every conversation it has (per provider, prompt and copy) must pass."""

    @property
    def flow_file(self) -> FlowFile:
        assert isinstance(self.parent, FlowFile)
        return self.parent

    def runtest(self) -> None:
        from rtflow import RtflowError

        outcome = self.flow_file.outcome(self.name)
        if isinstance(outcome, RtflowError):
            raise FlowTestFailure(_run_error_text(outcome, simulated=self.config.getoption("rtflow_sim")))
        self.user_properties.append(("rtflow_run", outcome.run_id))
        report = thread_report(outcome, self.name)
        if report is not None:
            raise FlowTestFailure(report)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, FlowTestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Not `file::thread`: pytest rewrites a heading that ends the node id as if it were a Python class path.
        return self.path, None, f"{self.path.name}: thread {self.name}"


def _run_error_text(error: RtflowError, *, simulated: bool) -> str:
    if simulated:
        return str(error)
    return f"{error}\n(pytest ran this flow against its real endpoints: --rtflow-sim runs it on the simulator)"


def thread_report(result: RunResult, thread_id: str) -> str | None:
    """None when every turn of every conversation of `thread_id` passed; else the transcript of each
    conversation that did not pass, with the reasons of its failed assertions and errors."""
    turns_of: dict[str, list[TurnRecord]] = {}
    for turn in result.turns:
        if turn.thread_id == thread_id:
            turns_of.setdefault(turn.conversation_id, []).append(turn)
    conversations = [each for each in result.plan.conversations.values() if each.thread_id == thread_id]
    if not conversations:  # nothing of it ran, so nothing of it passed
        return f"thread {thread_id!r} is not in run {result.run_id}"
    sections: list[str] = []
    for conversation in conversations:
        turns = turns_of.get(conversation.id, [])
        never_ran = len(conversation.turns) - len(turns)  # a simulated dialogue may add turns, never fewer
        if never_ran <= 0 and all(turn.status == "passed" for turn in turns):
            continue
        lines = [f"== {conversation.id}", *(_turn_lines(turn) for turn in turns)]
        if never_ran > 0:
            lines.append(f"  ({never_ran} planned turn(s) never ran)")
        sections.append("\n".join(lines))
    if not sections and not result.interrupted:
        return None
    failed = f"{len(sections)} of {len(conversations)} conversation(s) did not pass"
    heading = f"thread {thread_id!r}: {failed}" + (" (the run was interrupted)" if result.interrupted else "")
    return "\n\n".join([heading, *sections, f"the whole run: rtflow show {result.run_id}"])


def _turn_lines(turn: TurnRecord) -> str:
    """One turn as `rtflow show` prints it: what was said, what came back, what went wrong."""
    from rtflow.results.report.data import turn_input_text
    from rtflow.terminal import terminal_safe_record

    turn = terminal_safe_record(turn)  # model and server text never steers the terminal
    fallback = " (fallback)" if turn.is_fallback else ""
    lines = [f"turn {turn.turn_index + 1} [{turn.status}] {turn.provider}{fallback}"]
    if turn.dialogue is not None:
        if turn.dialogue.caller:
            lines.append(f"  caller (simulated): {turn.dialogue.caller}")
    elif (said := turn_input_text(turn)) or not turn.vars:
        lines.append(f"  user: {said}")
    else:  # never sent (skipped, or its prompt failed): what it would have been asked with
        lines.append("  vars: " + ", ".join(f"{name}={value!r}" for name, value in turn.vars.items()))
    if turn.output is not None:
        lines.extend(f"  tool: {call.name}({call.arguments}) -> {call.output}" for call in turn.output.tool_calls)
        lines.append(f"  {'agent' if turn.dialogue is not None else 'assistant'}: {turn.output.text}")
        lines.extend(f"  step failed: {failure}" for failure in turn.output.step_failures)
    if turn.error is not None:
        lines.append(f"  error ({turn.error.kind}): {turn.error.message}")
    lines.extend(
        f"  ✗ {assertion.type}: {assertion.error or assertion.reason}"
        for assertion in turn.assertions
        if not assertion.passed
    )
    return "\n".join(lines)
