"""What `runs`, `show` and `export` print: the run store read and drawn with rich.

Kept apart from the commands' definitions (`results_commands`) so that `rtflow --help` lists the commands
without importing rich, the run store or the report.

They only read, so the store is opened read-only (a write-protected file or folder can be read). Everything
printed from a record passes `terminal_safe_record` first: model and server text never steers the terminal.

`show` may list only turns of some statuses (`--failed`, `--status`): each conversation holding one is shown
with its other turns on one line each, so what was asked and answered before a failure stays in view.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from datetime import datetime
from itertools import groupby
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtflow.errors import StoreError
from rtflow.messages import TurnOutput
from rtflow.results.compare import Comparison, compare_runs
from rtflow.results.records import AssertionResult, RunRecord, TurnRecord
from rtflow.results.report import ReportBaseline, write_export
from rtflow.results.report.data import turn_input_text
from rtflow.results.report.dialogue import DialogueEnding, dialogue_ending
from rtflow.results.report.html import interruption_line, turn_taking_line
from rtflow.results.store import RunStore
from rtflow.results.summary import RunSummary, workers_of
from rtflow.runner.progress import _turn_taking
from rtflow.terminal import terminal_safe, terminal_safe_record

__all__ = ["diff_runs", "export_run", "list_runs", "print_comparison", "show_run"]

_STATUS_STYLES = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim", "pending": "yellow"}
_RUN_STYLES = {"finished": "green", "running": "yellow", "interrupted": "yellow", "crashed": "red"}


def _open_store(db_path: Path | None) -> RunStore:
    return RunStore(db_path, read_only=True)


def _summary(run: RunRecord, turns: Sequence[TurnRecord], thread: str | None) -> RunSummary:
    """The whole run's summary, or with `--thread` the summary of that thread's turns alone."""
    return RunSummary.of(run, turns, planned_turns=None if thread is None else len(turns))


def _when(moment: float | None, *, short: bool = False) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _console(*, highlight: bool = True) -> Console:
    """The terminal's own width on a terminal; off one (pipes, CI logs) wide enough not to cut words."""
    return Console(highlight=highlight, width=None if sys.stdout.isatty() else 160)


def _flow_name(flow_path: str | None) -> str:
    """The flow's path relative to the current folder when it lies below it (shorter in a table)."""
    if not flow_path:
        return "-"
    try:
        return str(Path(flow_path).resolve().relative_to(Path.cwd()))
    except ValueError:  # elsewhere: its folder and name say enough in a table
        parts = Path(flow_path).parts
        return str(Path(*parts[-2:])) if len(parts) > 2 else flow_path


def list_runs(db_path: Path | None, limit: int) -> None:
    """The newest `limit` runs as a table."""
    with _open_store(db_path) as store:
        runs = [terminal_safe_record(run) for run in store.list_runs(limit)]
        # A light box with no outer padding keeps the eight columns inside an 80-column terminal.
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
        # Ids and times stay whole (people copy them); the flow path folds when the terminal is narrow.
        table.add_column("run", no_wrap=True)
        table.add_column("started", no_wrap=True)
        table.add_column("flow", overflow="fold", min_width=8, ratio=1)
        table.add_column("status", min_width=8)
        for column in ("pass", "fail", "err", "skip"):
            table.add_column(column, justify="right", no_wrap=True)
        for run in runs:
            counts = store.summary(run.run_id).status_counts()
            table.add_row(
                Text(run.run_id),
                _when(run.started_at, short=True),
                Text(_flow_name(run.flow_path)),
                Text(run.status + (" (sim)" if run.simulated else ""), style=_RUN_STYLES.get(run.status, "")),
                *(
                    Text(str(counts.get(status, 0)), style=_STATUS_STYLES[status] if counts.get(status) else "dim")
                    for status in ("passed", "failed", "error", "skipped")
                ),
            )
    console = _console()
    where = terminal_safe(str(store.path))
    if not runs:
        console.print(Text(f"No runs in {where} yet."))
        return
    console.print(Text(f"Runs in {where}", style="dim"))
    console.print(table)


def _print_run(
    console: Console,
    run: RunRecord,
    turns: Sequence[TurnRecord],
    summary: RunSummary,
    statuses: Collection[str] = (),
) -> None:
    """The run's conversations and its counts; with `statuses`, only the conversations holding a turn of one of
    them, those turns in full and the others in brief."""
    header = Text.assemble(
        ("run ", "bold"),
        (run.run_id, "bold cyan"),
        f"  {_when(run.started_at)}  ",
        (run.status, _RUN_STYLES.get(run.status, "")),
    )
    if run.flow_path:
        header.append(f"  {run.flow_path}")
    console.print(header)
    accepted = summary.accepted_by_repeats(turns)
    for _, conversation in groupby(turns, key=lambda turn: turn.conversation_id):
        conversation_turns = list(conversation)
        if not statuses or any(turn.status in statuses for turn in conversation_turns):
            _print_conversation(console, conversation_turns, statuses, accepted)
    console.print()
    if statuses:
        console.print(_shown_line(turns, statuses, accepted))
    counts = [f"{status} {count}" for status, count in summary.status_counts().items()]
    if summary.turns:
        counts += [f"fallbacks {summary.fallbacks}", f"retries {summary.retries}"]
    console.print(Text("  ".join(counts) or "no turns"))
    turn_taking = _turn_taking(summary)  # the very table `rtflow run` ends with; None for a text-only run
    if turn_taking is not None:
        console.print()
        console.print(turn_taking)


def _shown_line(turns: Sequence[TurnRecord], statuses: Collection[str], accepted: Collection[str]) -> Text:
    """How many turns the status filter kept, of how many, in how many conversations; and how many of those the
    run accepted all the same (their test met its `pass_rate` across the repeats), so that the count agrees with
    the run's verdict."""
    kept = [turn for turn in turns if turn.status in statuses]
    which = " or ".join(statuses)
    if not kept:
        return Text(f"no turn is {which} (of {len(turns)})", style="bold")
    conversations = len({turn.conversation_id for turn in kept})
    plural = "" if conversations == 1 else "s"
    line = Text(
        f"shown: {len(kept)} of {len(turns)} turns ({which}), in {conversations} conversation{plural}", style="bold"
    )
    forgiven = sum(1 for turn in kept if turn.node_id in accepted)
    if forgiven:
        line.append(f"; {forgiven} of them accepted: their test met its pass_rate across the repeats", style="green")
    return line


def _print_conversation(
    console: Console, turns: Sequence[TurnRecord], statuses: Collection[str], accepted: Collection[str]
) -> None:
    """One conversation's turns; a simulated dialogue's verdicts once, after its last turn, with why it stopped
    (they judge the whole conversation, not the answer they are stored with). With `statuses`, a turn of
    another status gets one line (`_context_line`), and the verdicts only show when their turn is one of them."""
    first = turns[0]
    title = Text.assemble(("== ", "dim"), (first.conversation_id, "bold"), (f"  (thread {first.thread_id})", "dim"))
    if any(turn.dialogue is not None for turn in turns):
        title.append("  simulated caller", style="yellow")
    workers = workers_of(turns)
    if workers:
        title.append(f"  on {', '.join(workers)}", style="dim")
    console.print()
    console.print(title)
    ending = dialogue_ending(turns)
    for turn in turns:
        if statuses and turn.status not in statuses:
            console.print(_context_line(turn))
        else:
            verdicts = ending is None or turn.turn_index != ending.turn_index
            _print_turn(console, turn, verdicts=verdicts, accepted=turn.node_id in accepted)
    if ending is not None and (not statuses or ending.status in statuses):
        _print_ending(console, ending)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _context_line(turn: TurnRecord) -> Text:
    """A turn shown for its conversation's sake: number, status, and the start of what was said and answered,
    on one line cut to the terminal's width."""
    line = Text.assemble(
        (f"turn {turn.turn_index + 1} ", "dim"), (f"[{turn.status}]", _STATUS_STYLES.get(turn.status, ""))
    )
    who, said = ("caller", turn.dialogue.caller) if turn.dialogue is not None else ("user", turn_input_text(turn))
    if said:
        line.append(f"  {who}: {_one_line(said)}", style="dim")
    if turn.output is not None and turn.output.text:
        line.append(f"  answer: {_one_line(turn.output.text)}", style="dim")
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def _print_ending(console: Console, ending: DialogueEnding) -> None:
    """Why the dialogue stopped, and the conversation-level verdicts with their reasons."""
    plural = "" if ending.agent_turns == 1 else "s"
    console.print(
        Text.assemble(
            ("  stopped: ", "bold"),
            terminal_safe(ending.words),  # from a cleaned record already; cleaned again as it is printed
            (f"  (after {ending.agent_turns} agent turn{plural})", "dim"),
        )
    )
    status = (f"[{ending.status}]", _STATUS_STYLES.get(ending.status, ""))
    console.print(Text.assemble(("  conversation verdict ", "bold"), status))
    _print_assertions(console, ending.verdicts)


def _print_assertions(console: Console, results: Sequence[AssertionResult]) -> None:
    """Verdicts one a line, each with its reason: a turn's, or a whole dialogue's."""
    for result in results:
        mark = ("✓", "green") if result.passed else ("✗", "red")
        console.print(Text.assemble("    ", mark, f" {result.type} ", (result.reason, "dim")))


def _turn_line(turn: TurnRecord, *, accepted: bool) -> Text:
    """The turn's header: number, status, whether the run accepted it all the same, provider, attempts and
    total time."""
    line = Text.assemble(f"turn {turn.turn_index + 1} ", (f"[{turn.status}]", _STATUS_STYLES.get(turn.status, "")))
    if accepted:
        line.append(" (accepted: pass_rate met across the repeats)", style="green")
    line.append(f" {turn.provider}")
    if turn.is_fallback:
        line.append(" (fallback)", style="cyan")
    line.append(f"  attempts {turn.attempts}", style="dim")
    if turn.output is not None and turn.output.metrics.total_ms is not None:
        line.append(f"  {turn.output.metrics.total_ms:.0f} ms", style="dim")
    return line


def _print_said(console: Console, turn: TurnRecord) -> None:
    """What the turn was asked: a simulated caller's line, the user's message, or (never sent) its vars."""
    if turn.dialogue is not None:
        if turn.dialogue.caller:  # empty when the agent spoke first, or the dialogue ended before the agent spoke
            console.print(Text.assemble(("  caller (simulated): ", "bold yellow"), turn.dialogue.caller))
        return
    said = turn_input_text(turn)
    if said or not turn.vars:
        console.print(Text.assemble(("  user: ", "bold"), said))
    else:  # never sent (skipped, or its prompt failed): show what the turn would have been asked with
        shown = ", ".join(f"{name}={value!r}" for name, value in turn.vars.items())
        console.print(Text.assemble(("  vars: ", "bold"), shown))


def _print_answer(console: Console, turn: TurnRecord, output: TurnOutput) -> None:
    """The answer with its tool calls, then its turn-taking figures and, for an answer the caller cut short,
    what was heard of it and the barge-in as the flow planned it and as it went."""
    for call in output.tool_calls:
        console.print(Text.assemble(("  tool: ", "bold"), f"{call.name}({call.arguments}) -> {call.output}"))
    who = "agent" if turn.dialogue is not None else "assistant"
    console.print(Text.assemble((f"  {who}: ", "bold"), output.text))
    if output.heard_text is not None:
        console.print(Text.assemble(("  heard: ", "bold"), output.heard_text))
    if output.interruption is not None:
        console.print(Text(f"  {interruption_line(output.interruption)}", style="yellow"))
    figures = turn_taking_line(output)
    if figures:
        console.print(Text(f"  {' · '.join(figures)}", style="dim"))


def _print_turn(console: Console, turn: TurnRecord, *, verdicts: bool, accepted: bool) -> None:
    """One turn; its assertions unless `verdicts` is off (a dialogue's, printed after the dialogue). `accepted`: it
    did not pass, but its test met its `pass_rate` across the repeats."""
    console.print(_turn_line(turn, accepted=accepted))
    _print_said(console, turn)
    if turn.output is not None:
        _print_answer(console, turn, turn.output)
    if turn.error is not None:
        console.print(Text(f"  {turn.error.kind}: {turn.error.message}", style="magenta"))
    for warning in turn.output.protocol_warnings if turn.output is not None else []:
        console.print(Text(f"  protocol warning: {warning}", style="yellow"))
    if verdicts:
        _print_assertions(console, turn.assertions)


def show_run(run_id: str, db_path: Path | None, thread: str | None, statuses: Collection[str] = ()) -> None:
    """RUN's transcripts and verdicts; with `statuses`, only the turns of those statuses (in their conversations)."""
    with _open_store(db_path) as store:
        run = store.get_run(run_id)
        turns = store.turns(run.run_id, thread=thread)
    summary = _summary(run, turns, thread)  # its figures only: no text of it is printed
    _print_run(
        _console(highlight=False),
        terminal_safe_record(run),
        [terminal_safe_record(turn) for turn in turns],
        summary,
        statuses,
    )


def export_run(
    run_id: str, db_path: Path | None, output_path: Path, thread: str | None, baseline_id: str | None = None
) -> None:
    """RUN written to `output_path` in the format its suffix names (an HTML report compared with `baseline_id`)."""
    baseline = None
    with _open_store(db_path) as store:
        run = store.get_run(run_id)
        turns = store.turns(run.run_id, thread=thread)
        if baseline_id is not None:
            base_run = store.get_run(store.baseline_run_id(baseline_id, flow_path=run.flow_path, before=run))
            baseline = ReportBaseline(base_run, store.turns(base_run.run_id, thread=thread))
    written = write_export(run, turns, output_path, summary=_summary(run, turns, thread), baseline=baseline)
    click.echo(terminal_safe(f"wrote {len(turns)} turns of {run.run_id} to {written}"))


def diff_runs(baseline_id: str, run_id: str, db_path: Path | None, *, strict: bool = False) -> bool:
    """Print how RUN differs from BASELINE; whether it has a regression (what fails a CI gate). Runs that share no
    test raise FlowError (`Comparison.gate`): a gate with nothing to judge must not pass."""
    with _open_store(db_path) as store:
        run = store.get_run(run_id)
        baseline = store.get_run(store.baseline_run_id(baseline_id, flow_path=run.flow_path, before=run))
        comparison = compare_runs(store.turns(baseline.run_id), store.turns(run.run_id))
    print_comparison(_console(highlight=False), comparison, baseline.run_id, run.run_id, strict=strict)
    return comparison.gate(baseline.run_id, run.run_id, strict=strict)


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def print_comparison(console: Console, comparison: Comparison, baseline_id: str, run_id: str, *, strict: bool) -> None:
    """The changes that matter (everything but `same`), then one line (the verdict is `Comparison.gate`'s)."""
    shown = [change for change in comparison.changes if change.kind != "same"]
    if shown:
        table = Table(title=f"{run_id} against {baseline_id}", box=box.SIMPLE, title_justify="left")
        for column in ("change", "test", "before", "after", "p", "median ms (before -> after)", "p (latency)"):
            table.add_column(column, justify="left" if column in ("change", "test") else "right")
        for change in shown:
            latency = "-" if change.latency_ms is None else f"{change.latency_ms[0]:.0f} -> {change.latency_ms[1]:.0f}"
            table.add_row(
                change.kind,
                terminal_safe(change.key),
                f"{change.before[0]}/{change.before[1]}",
                f"{change.after[0]}/{change.after[1]}",
                _p(change.p_value),
                latency,
                _p(change.latency_p_value),
            )
        console.print(table)
    regressions = comparison.regressions(strict=strict)
    same = len(comparison.changes) - len(shown)
    console.print(
        f"{len(regressions)} regression(s), {len(comparison.of_kind('improvement'))} improvement(s),"
        f" {len(comparison.of_kind('newly failing'))} newly failing, {len(comparison.of_kind('newly passing'))}"
        f" newly passing, {same} unchanged (Fisher's exact test, p < 0.05)"
    )
    if comparison.changes and not comparison.compared:
        console.print(f"warning: {run_id} and {baseline_id} share no test: nothing was compared (another flow?)")


def merge_stores(stores: list[Path], output: Path, run_id: str) -> None:
    """Merge run `run_id` of each store into one new run in `output`, and say what it holds."""
    from rtflow.results.merge import merge_runs

    parts = []
    for path in stores:
        if not path.is_file():
            raise StoreError(f"{path}: no such run store")
        with RunStore(path, read_only=True) as store:
            run = store.get_run(run_id)
            parts.append((run, store.turns(run.run_id)))
    merged = merge_runs(parts)
    with RunStore(output) as store:
        store.start_run(merged.run)
        store.save_turns(merged.turns)
    summary = RunSummary.of(merged.run, merged.turns)
    counts = ", ".join(f"{count} {status}" for status, count in summary.status_counts().items()) or "no turns"
    click.echo(terminal_safe(f"merged {len(parts)} runs into run {merged.run.run_id} in {output}: {counts}"))
    for note in merged.notes:
        click.echo(terminal_safe(f"note: {note}"), err=True)
