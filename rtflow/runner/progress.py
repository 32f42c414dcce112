"""What a person sees while a run goes and when it ends: a progress bar (TTY only) and a summary table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rtflow.results.records import TurnRecord
from rtflow.results.run_result import RunResult
from rtflow.results.summary import RunSummary, TurnFigures
from rtflow.terminal import terminal_safe

__all__ = ["RunProgress", "print_summary"]


class RunProgress:
    """A rich progress bar of turns done out of the total, with calls in flight and errors."""

    def __init__(self, total: int, in_flight: Callable[[], int], stream: TextIO | None = None) -> None:
        self._in_flight = in_flight
        self._errors = 0
        self._done: set[str] = set()
        self._progress = Progress(
            TextColumn("[bold]turns"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("in flight {task.fields[in_flight]}"),
            TextColumn("errors {task.fields[errors]}"),
            TimeElapsedColumn(),
            console=Console(file=stream, stderr=stream is None),
            transient=False,
            refresh_per_second=8,
        )
        self._task = self._progress.add_task("run", total=total, in_flight=0, errors=0)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self._progress.stop()

    def turn(self, record: TurnRecord) -> None:
        if record.status == "error":
            self._errors += 1
        self._done.add(record.node_id)
        self.refresh()

    def refresh(self) -> None:
        self._progress.update(self._task, completed=len(self._done), in_flight=self._in_flight(), errors=self._errors)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _row(label: str, figures: TurnFigures, *, with_pending: bool) -> list[str]:
    counts = [figures.passed, figures.failed, figures.error, figures.skipped]
    if with_pending:
        counts.append(figures.pending)
    return [
        label,
        *(str(count) for count in counts),
        str(figures.fallbacks),
        str(figures.retries),
        f"{figures.tokens:,}",
        "-" if figures.cost is None else f"{figures.cost:.4f}",
        _ms(figures.first_delta_p50_ms),
        _ms(figures.first_delta_p95_ms),
        _ms(figures.total_p50_ms),
        _ms(figures.total_p95_ms),
    ]


def _turn_taking(figures: TurnFigures) -> Table | None:
    """The run's turn-taking percentiles as a borderless table that fits 80 columns, or None when the run has
    no spoken turn-taking figures (`has_turn_taking`: a text-only run prints nothing more than before)."""
    if not figures.has_turn_taking:
        return None
    plural = "" if figures.interrupted == 1 else "s"
    caption = f"{figures.interrupted} answer{plural} cut short by the caller (barge-in)"
    table = Table(
        title="turn-taking, ms",
        title_justify="left",
        caption=caption if figures.interrupted else None,
        caption_justify="left",
        box=box.SIMPLE,
        show_edge=False,
    )
    table.add_column("metric")
    for column in ("p50", "p90", "p95", "n"):
        table.add_column(column, justify="right")
    for name, values in figures.timing.items():
        table.add_row(name.replace("_", " "), _ms(values.p50), _ms(values.p90), _ms(values.p95), str(values.count))
    return table


def _repeats(summary: RunSummary) -> Table | None:
    """With `--repeat`: how often each conversation passed, its 95% interval, pass@k and pass^k (k = 5, or the
    number of runs when fewer), and which are flaky; the flaky ones first."""
    conversations = [figure for figure in summary.repeats if figure.kind == "conversation"]
    if not conversations:
        return None
    table = Table(title="repeats (conversations)", box=box.SIMPLE, title_justify="left")
    for column in ("conversation", "passed", "rate", "95% interval", "pass@k / pass^k", ""):
        table.add_column(column, justify="left" if column in ("conversation", "") else "right")
    for figure in sorted(conversations, key=lambda f: (not f.flaky, f.key)):
        k = min(5, figure.runs)
        table.add_row(
            terminal_safe(figure.key),
            f"{figure.passed}/{figure.runs}",
            f"{figure.pass_rate:.0%}",
            f"{figure.low:.0%}-{figure.high:.0%}",
            f"{figure.pass_at_k[k]:.2f} / {figure.pass_hat_k[k]:.2f} (k={k})",
            "flaky" if figure.flaky else "",
        )
    return table


def _status_count(name: str, count: int, summary: RunSummary) -> str:
    """`3 error (1 by the simulated caller)`: a caller error is not the agent's, so it is counted apart."""
    text = f"{count} {name}"
    if name == "error" and summary.caller_errors:
        text += f" ({summary.caller_errors} by the simulated caller)"
    return text


def print_summary(result: RunResult, console: Console, *, max_failures: int = 10) -> None:
    """The end-of-run table per primary provider (and a total row when there are several), the run's turn-taking
    percentiles when it has any, then the first failures with their reasons. Every figure is the run's
    `RunSummary`'s."""
    summary = result.summary
    with_pending = summary.pending > 0  # only an interrupted or crashed run leaves turns ungraded
    table = Table(title=f"run {result.run_id}" + (" (simulated)" if result.run.simulated else ""), title_justify="left")
    statuses = ("passed", "failed", "error", "skipped", *(("pending",) if with_pending else ()))
    for column in ("provider", *statuses, "fallbacks", "retries", "tokens", "cost $"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for column in ("ttfd p50", "ttfd p95", "total p50", "total p95"):
        table.add_column(column + " ms", justify="right")
    for row in summary.providers:
        table.add_row(*_row(terminal_safe(row.provider), row, with_pending=with_pending))
    if len(summary.providers) > 1:
        table.add_section()
        table.add_row(*_row("all", summary, with_pending=with_pending), style="bold")
    console.print(table)
    turn_taking = _turn_taking(summary)
    if turn_taking is not None:
        console.print(turn_taking)
    repeats = _repeats(summary)
    if repeats is not None:
        console.print(repeats)
    line = ", ".join(_status_count(name, count, summary) for name, count in summary.status_counts().items())
    took = "" if summary.duration_s is None else f" in {summary.duration_s:.2f}s"
    console.print(f"{line or 'no turns'}{took}")
    failures = result.failures()
    for record in failures[:max_failures]:
        if record.status == "error" and record.error is not None:
            reason = record.error.message
        else:
            reason = "; ".join(a.reason for a in record.assertions if not a.passed) or "below threshold"
        # Model and server text (and names from the flow) never steer the terminal.
        where, why = terminal_safe(record.node_id), terminal_safe(reason)
        console.print(Text.assemble((f"{record.status.upper():<6} ", "bold red"), (where, "bold"), f": {why}"))
    if len(failures) > max_failures:
        console.print(f"... and {len(failures) - max_failures} more")
    if result.interrupted:
        console.print(
            f"interrupted: {len(result.turns)} finished turns kept; finish with `rtflow run --resume {result.run_id}`"
        )
