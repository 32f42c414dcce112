"""What a person sees while a run goes and when it ends: a progress bar (TTY only) and a summary.

The bar counts the turns' verdicts as they come and estimates the time left; rtflow's log lines print above it
while it is drawn. The summary is one table when the terminal is wide enough for it, else two narrower ones,
so no header is ever cut; then each failure with its reason and the start of the answer, and the command that
lists them all.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from rtflow.log import printing_above
from rtflow.messages import usd
from rtflow.results.records import TurnRecord, TurnStatus
from rtflow.results.run_result import RunResult
from rtflow.results.summary import RunSummary, TurnFigures, in_worker_order
from rtflow.results.verdicts import failure_reason
from rtflow.terminal import terminal_safe

__all__ = ["RunProgress", "print_summary"]

_VERDICT_STYLES: dict[str, str] = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim"}
"""The verdicts the bar counts, in the order it shows them, styled as `rtflow show` styles them."""

_ANSWER_EXCERPT_CHARS = 100
"""How much of a failing turn's answer the summary quotes: enough to recognise it, one line at 80 columns."""
_REASON_CHARS = 300
"""A reason longer than this (an `equals` quoting a whole answer) is cut: the full one is in `rtflow show`."""
_UNBOUNDED_WIDTH = 10_000
"""Wider than any terminal: the width a table is measured in to learn the width it wants."""


class _VerdictProgress(Progress):
    """rich's progress bar with a line of verdict counts under it: beside the bar they would not fit 80 columns."""

    def __init__(
        self,
        verdicts: Callable[[], Text],
        *columns: str | ProgressColumn,
        console: Console,
        workers: Callable[[], Text],
    ) -> None:
        self._verdicts = verdicts  # before rich's own set-up, which draws the display once
        self._workers = workers
        super().__init__(*columns, console=console, transient=False, refresh_per_second=8, expand=True)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self._verdicts()
        workers = self._workers()
        if workers.plain:  # on Ray only
            yield workers


def _verdict_line(counts: Counter[str]) -> Text:
    """`passed 42  failed 18  error 0  skipped 0`: every verdict always shown, a zero dimmed."""
    parts = [
        Text(f"{status} {counts[status]}", style=style if counts[status] else "dim")
        for status, style in _VERDICT_STYLES.items()
    ]
    return Text("  ").join(parts)


def _worker_line(counts: Counter[str]) -> Text:
    """`worker-1 120  worker-2 118`: turns finished per Ray worker (nothing for a run in one process)."""
    ordered = in_worker_order(counts)
    return Text("  ".join(f"{worker} {count}" for worker, count in ordered.items()), style="dim")


class RunProgress:
    """A rich progress bar of turns done out of the total, calls in flight, elapsed time and an estimate of the
    time left, with the count of each verdict on the line below. While it is drawn, rtflow's log lines bound for
    the same terminal print above it (`rtflow.log.printing_above`) instead of through it."""

    def __init__(self, total: int, in_flight: Callable[[], int], stream: TextIO | None = None) -> None:
        self._in_flight = in_flight
        # A turn is reported `pending` when answered, then again once graded: the latest verdict counts.
        self._statuses: dict[str, TurnStatus] = {}
        self._counts: Counter[str] = Counter()
        """How many turns have each latest verdict, kept as they come: a redraw reads it, not every turn."""
        self._workers: Counter[str] = Counter()
        """Turns each Ray worker ran (counted when a turn is first reported)."""
        self._console = Console(file=stream, stderr=stream is None)
        self._progress = _VerdictProgress(
            lambda: _verdict_line(self._counts),
            TextColumn("[bold]turns"),
            BarColumn(bar_width=None, table_column=Column(ratio=1)),  # whatever the other columns leave
            MofNCompleteColumn(),
            TextColumn("in flight {task.fields[in_flight]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(compact=True),
            console=self._console,
            workers=lambda: _worker_line(self._workers),
        )
        self._task = self._progress.add_task("run", total=total, in_flight=0)
        self._logs_above = printing_above(self._console.file, self._print_log_line)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        self._logs_above.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self._progress.stop()
        self._logs_above.__exit__(None, None, None)  # only now: a line logged while the bar stops goes above it

    def _print_log_line(self, line: str) -> None:
        # Left unwrapped (the terminal wraps it): a log line is one line, whole, as a reader copies it.
        self._console.print(Text.from_ansi(line), soft_wrap=True)

    def turn(self, record: TurnRecord) -> None:
        earlier = self._statuses.get(record.node_id)
        if earlier is not None:
            self._counts[earlier] -= 1
        elif record.worker is not None:
            self._workers[record.worker] += 1
        self._statuses[record.node_id] = record.status
        self._counts[record.status] += 1
        self.refresh()

    def refresh(self) -> None:
        self._progress.update(self._task, completed=len(self._statuses), in_flight=self._in_flight())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


_LATENCY_COLUMNS = ("ttfd p50", "ttfd p95", "total p50", "total p95")


def _statuses(with_pending: bool) -> tuple[str, ...]:
    return ("passed", "failed", "error", "skipped", *(("pending",) if with_pending else ()))


def _verdict_cells(figures: TurnFigures, *, with_pending: bool) -> list[str]:
    counts = [figures.passed, figures.failed, figures.error, figures.skipped]
    if with_pending:
        counts.append(figures.pending)
    return [*(str(count) for count in counts), str(figures.fallbacks), str(figures.retries)]


def _cost_cells(figures: TurnFigures) -> list[str]:
    return [
        f"{figures.tokens:,}",
        "-" if figures.cost is None else usd(figures.cost),
        _ms(figures.first_delta_p50_ms),
        _ms(figures.first_delta_p95_ms),
        _ms(figures.total_p50_ms),
        _ms(figures.total_p95_ms),
    ]


def _fill(table: Table, summary: RunSummary, cells: Callable[[TurnFigures], list[str]]) -> None:
    """A row per primary provider, then the whole run's in bold when there are several providers."""
    for row in summary.providers:
        table.add_row(terminal_safe(row.provider), *cells(row))
    if len(summary.providers) > 1:
        table.add_section()
        table.add_row("all", *cells(summary), style="bold")


def _table(title: str | None, headers: Sequence[str], *, light: bool = False) -> Table:
    """A table whose first column (the provider) folds when narrow; the figures' headers never fold or cut."""
    table = Table(title=title, title_justify="left")
    if light:  # no outer frame and a plain rule under the header: a few columns more in 80
        table.box, table.pad_edge, table.show_edge = box.SIMPLE_HEAD, False, False
    table.add_column(headers[0], overflow="fold")
    for header in headers[1:]:
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    return table


def _one_table(summary: RunSummary, title: str, *, with_pending: bool) -> Table:
    """Verdicts, tokens, cost and latency in one row per provider: for a terminal wide enough."""
    latency = (f"{column} ms" for column in _LATENCY_COLUMNS)
    headers = ("provider", *_statuses(with_pending), "fallbacks", "retries", "tokens", "cost $", *latency)
    table = _table(title, headers)
    _fill(table, summary, lambda figures: [*_verdict_cells(figures, with_pending=with_pending), *_cost_cells(figures)])
    return table


def _two_tables(summary: RunSummary, title: str, *, with_pending: bool) -> list[Table]:
    """The same figures in two lighter tables, verdicts then tokens, cost and latency: for 80 columns."""
    verdicts = _table(title, ("provider", *_statuses(with_pending), "fallbacks", "retries"), light=True)
    _fill(verdicts, summary, lambda figures: _verdict_cells(figures, with_pending=with_pending))
    costs = _table("tokens, cost and latency (ms)", ("provider", "tokens", "cost $", *_LATENCY_COLUMNS), light=True)
    _fill(costs, summary, _cost_cells)
    return [verdicts, costs]


def _fits(console: Console, table: Table) -> bool:
    """Whether `table` shows at its natural width, nothing folded or cut."""
    unbounded = console.options.update_width(_UNBOUNDED_WIDTH)  # rich caps a measure at the width it is given
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _provider_tables(result: RunResult, console: Console) -> list[Table]:
    """The end-of-run figures per primary provider: one table when it fits the console, else two."""
    summary = result.summary
    with_pending = summary.pending > 0  # only an interrupted or crashed run leaves turns ungraded
    title = f"run {result.run_id}" + (" (simulated)" if result.run.simulated else "")
    wide = _one_table(summary, title, with_pending=with_pending)
    return [wide] if _fits(console, wide) else _two_tables(summary, title, with_pending=with_pending)


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
    for figure in sorted(conversations, key=lambda f: (f.meets is not False, not f.flaky, f.key)):
        k = min(5, figure.runs)
        notes = [note for note in ("flaky" if figure.flaky else "", figure.requirement) if note]
        table.add_row(
            terminal_safe(figure.key),
            f"{figure.passed}/{figure.runs}",
            f"{figure.pass_rate:.0%}",
            f"{figure.low:.0%}-{figure.high:.0%}",
            f"{figure.pass_at_k[k]:.2f} / {figure.pass_hat_k[k]:.2f} (k={k})",
            "; ".join(notes),
        )
    return table


def _status_count(name: str, count: int, summary: RunSummary) -> str:
    """`3 error (1 by the simulated caller)`: a caller error is not the agent's, so it is counted apart."""
    text = f"{count} {name}"
    if name == "error" and summary.caller_errors:
        text += f" ({summary.caller_errors} by the simulated caller)"
    return text


def _excerpt(text: str, limit: int) -> str:
    """`text` on one line, cut at `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _show_failed_command(run_id: str, db_path: Path | None) -> str:
    """The command line that lists RUN's failed and errored turns with their conversations."""
    command = ["rtflow", "show", run_id, "--failed"]
    if db_path is not None:
        command += ["--db", str(db_path)]
    return shlex.join(command)


def _failure(record: TurnRecord) -> list[RenderableType]:
    """A failed or errored turn's id, then why (wrapped under itself) and the start of what the model said (one
    line), so a reader sees at once what was expected and what came."""
    # Model and server text (and names from the flow) never steer the terminal.
    title = Text.assemble((f"{record.status.upper():<6} ", "bold red"), (terminal_safe(record.node_id), "bold"))
    details = Table.grid(padding=(0, 1))
    details.add_column(min_width=1)  # the indent
    details.add_column(style="dim", no_wrap=True, min_width=len("said"))
    details.add_column(overflow="fold")
    details.add_row("", "why", terminal_safe(_excerpt(failure_reason(record), _REASON_CHARS)))
    said = record.output.text if record.output is not None else ""
    if said.strip():
        answer = Text(terminal_safe(_excerpt(said, _ANSWER_EXCERPT_CHARS)), no_wrap=True, overflow="ellipsis")
        details.add_row("", "said", answer)
    return [title, details]


def _print_failures(result: RunResult, console: Console, max_failures: int, db_path: Path | None) -> None:
    """The first `max_failures` failures, then how many more there are and, on a line of its own to copy, the
    command that lists them all."""
    failures = result.failures
    if not failures:
        return
    for record in failures[:max_failures]:
        for renderable in _failure(record):
            console.print(renderable)
    more = len(failures) - max_failures
    if more > 0:
        console.print(f"... and {more} more. All {len(failures)}, with their conversations:")
    else:
        console.print("With their conversations:")
    console.print(Text(f"  {_show_failed_command(result.run_id, db_path)}", style="bold"), soft_wrap=True)


def print_summary(result: RunResult, console: Console, *, max_failures: int = 10, db_path: Path | None = None) -> None:
    """The end-of-run table per primary provider (and a total row when there are several), the run's turn-taking
    percentiles when it has any, then the first failures with their reasons and the start of their answers, and
    the `rtflow show RUN --failed` command (with `--db db_path` when the store is not the default) that lists
    them all. Every figure is the run's `RunSummary`'s."""
    summary = result.summary
    for table in _provider_tables(result, console):
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
    if summary.workers:
        ran = ", ".join(f"{worker} {count}" for worker, count in summary.workers.items())
        console.print(f"turns per Ray worker: {ran}")
    if summary.cost_per_pass is not None:
        console.print(f"cost per passing turn: ${usd(summary.cost_per_pass)}")
    if summary.unmet_pass_rates:
        console.print(f"{summary.unmet_pass_rates} turn(s) did not pass as often as their pass_rate asks")
    _print_failures(result, console, max_failures, db_path)
    if result.interrupted:
        console.print(
            f"interrupted: {len(result.turns)} finished turns kept; finish with `rtflow run --resume {result.run_id}`"
        )
