"""What `runs`, `show` and `export` print: the run store read and drawn with rich.

Kept apart from the commands' definitions (`results_commands`) so that `rtflow --help` lists the commands
without importing rich, the run store or the report.

They only read, so the store is opened read-only (a write-protected file or folder can be read). Everything
printed from a record passes `terminal_safe_record` first: model and server text never steers the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import write_export
from rtflow.results.report.data import turn_input_text
from rtflow.results.store import RunStore
from rtflow.results.summary import RunSummary
from rtflow.terminal import terminal_safe, terminal_safe_record

__all__ = ["export_run", "list_runs", "show_run"]

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


def _print_run(console: Console, run: RunRecord, turns: Sequence[TurnRecord], summary: RunSummary) -> None:
    header = Text.assemble(
        ("run ", "bold"),
        (run.run_id, "bold cyan"),
        f"  {_when(run.started_at)}  ",
        (run.status, _RUN_STYLES.get(run.status, "")),
    )
    if run.flow_path:
        header.append(f"  {run.flow_path}")
    console.print(header)
    conversation = None
    for turn in turns:
        if turn.conversation_id != conversation:
            conversation = turn.conversation_id
            console.print()
            console.print(
                Text.assemble(("== ", "dim"), (conversation, "bold"), (f"  (thread {turn.thread_id})", "dim"))
            )
        _print_turn(console, turn)
    console.print()
    counts = [f"{status} {count}" for status, count in summary.status_counts().items()]
    if summary.turns:
        counts += [f"fallbacks {summary.fallbacks}", f"retries {summary.retries}"]
    console.print(Text("  ".join(counts) or "no turns"))


def _print_turn(console: Console, turn: TurnRecord) -> None:
    line = Text.assemble(
        f"turn {turn.turn_index + 1} ", (f"[{turn.status}]", _STATUS_STYLES.get(turn.status, "")), f" {turn.provider}"
    )
    if turn.is_fallback:
        line.append(" (fallback)", style="cyan")
    line.append(f"  attempts {turn.attempts}", style="dim")
    if turn.output is not None and turn.output.metrics.total_ms is not None:
        line.append(f"  {turn.output.metrics.total_ms:.0f} ms", style="dim")
    console.print(line)
    said = turn_input_text(turn)
    if said or not turn.vars:
        console.print(Text.assemble(("  user: ", "bold"), said))
    else:  # never sent (skipped, or its prompt failed): show what the turn would have been asked with
        shown = ", ".join(f"{name}={value!r}" for name, value in turn.vars.items())
        console.print(Text.assemble(("  vars: ", "bold"), shown))
    if turn.output is not None:
        for call in turn.output.tool_calls:
            console.print(Text.assemble(("  tool: ", "bold"), f"{call.name}({call.arguments}) -> {call.output}"))
        console.print(Text.assemble(("  assistant: ", "bold"), turn.output.text))
    if turn.error is not None:
        console.print(Text(f"  {turn.error.kind}: {turn.error.message}", style="magenta"))
    for warning in turn.output.protocol_warnings if turn.output is not None else []:
        console.print(Text(f"  protocol warning: {warning}", style="yellow"))
    for result in turn.assertions:
        mark = ("✓", "green") if result.passed else ("✗", "red")
        console.print(Text.assemble("    ", mark, f" {result.type} ", (result.reason, "dim")))


def show_run(run_id: str, db_path: Path | None, thread: str | None) -> None:
    """RUN's transcripts and verdicts."""
    with _open_store(db_path) as store:
        run = store.get_run(run_id)
        turns = store.turns(run.run_id, thread=thread)
    summary = _summary(run, turns, thread)  # its figures only: no text of it is printed
    _print_run(
        _console(highlight=False), terminal_safe_record(run), [terminal_safe_record(turn) for turn in turns], summary
    )


def export_run(run_id: str, db_path: Path | None, output_path: Path, thread: str | None) -> None:
    """RUN written to `output_path` in the format its suffix names."""
    with _open_store(db_path) as store:
        run = store.get_run(run_id)
        turns = store.turns(run.run_id, thread=thread)
    written = write_export(run, turns, output_path, summary=_summary(run, turns, thread))
    click.echo(terminal_safe(f"wrote {len(turns)} turns of {run.run_id} to {written}"))
