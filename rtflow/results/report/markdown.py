"""The Markdown summary (`-o summary.md`, and `$GITHUB_STEP_SUMMARY` after `rtflow run`): what a reviewer
reads on a CI job's page before opening anything else.

Every figure comes from `RunSummary`; this module only lays them out: the title (run id, pass rate), the
per-provider table, the turn-taking percentiles when the run has spoken figures, the repeats table when the run
repeated conversations (unmet pass rates, then flaky ones first), then the first failures with their reasons
and what the model said.

Text from the records (model output, reasons, descriptions) is untrusted: `inline` escapes what would turn it
into HTML or links and puts it on one line, and `cell` also escapes `|`, which would otherwise end a table
cell and shift every column after it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.repeats import RepeatFigures
from rtflow.results.report.atomic import atomic_text_file
from rtflow.results.summary import TURN_TAKING_METRICS, RunSummary
from rtflow.results.verdicts import failure_reason

__all__ = ["cell", "inline", "render_markdown", "write_markdown"]

FAILURES_SHOWN = 10
"""How many failures are listed with their reasons; the rest are counted."""
_EXCERPT_CHARS = 200
"""How much of a failing turn's output is quoted."""
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def inline(text: str) -> str:
    """`text` on one line, with `&`, `<` and `>` as entities so that a model's output stays text (GitHub
    renders some HTML in summaries) and control characters dropped."""
    return html.escape(" ".join(_CONTROL.sub("", text).split()), quote=False)


def cell(text: str) -> str:
    """`text` for a table cell: `inline`, with `|` escaped so it cannot split the cell."""
    return inline(text).replace("|", "\\|")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub table; every cell is escaped here, so callers pass plain text."""
    lines = ["| " + " | ".join(cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def _title(summary: RunSummary) -> list[str]:
    rate = "no turns" if summary.pass_rate is None else f"{summary.pass_rate:.1%} passed"
    counts = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in summary.status_counts().items())
    return [f"# rtflow run {inline(summary.run_id)}: {rate}", "", f"{summary.planned_turns} turns: {counts or '–'}", ""]


def _providers(summary: RunSummary) -> list[str]:
    header = ("provider", "passed", "failed", "error", "skipped", "ttfd p50", "ttfd p95")
    rows = [
        (
            figures.provider,
            str(figures.passed),
            str(figures.failed),
            str(figures.error),
            str(figures.skipped),
            _ms(figures.first_delta_p50_ms),
            _ms(figures.first_delta_p95_ms),
        )
        for figures in summary.providers
    ]
    return ["## Providers", "", *_table(header, rows)]


def _turn_taking(summary: RunSummary) -> list[str]:
    """The turn-taking percentiles, only for a run with spoken figures (as every other view shows them)."""
    if not summary.has_turn_taking:
        return []
    rows = [
        (name, _ms(figures.p50), _ms(figures.p90), _ms(figures.p95), str(figures.count))
        for name in TURN_TAKING_METRICS
        if (figures := summary.timing.get(name)) is not None
    ]
    note = [f"{summary.interrupted} answers cut short by the caller.", ""] if summary.interrupted else []
    return ["## Turn-taking", "", *_table(("metric", "p50", "p90", "p95", "count"), rows), *note]


def _repeats(figures: Sequence[RepeatFigures]) -> list[str]:
    """The repeats table, flaky rows first (what a reviewer acts on), otherwise in the summary's order."""
    if not figures:
        return []
    ordered = sorted(figures, key=lambda row: (row.meets is not False, not row.flaky))
    rows = [
        (
            row.key,
            f"{row.passed}/{row.runs}",
            f"{row.pass_rate:.0%}",
            f"{row.low:.0%}–{row.high:.0%}",
            row.requirement,
            _spread_ms(row),
            "flaky" if row.flaky else "",
        )
        for row in ordered
    ]
    header = ("conversation / turn", "passed", "rate", "95% interval", "pass_rate", "time p50 (95% interval)", "")
    return ["## Repeats", "", *_table(header, rows)]


def _spread_ms(row: RepeatFigures) -> str:
    spread = row.latency_ms
    if spread is None:
        return ""
    return f"{spread.p50:.0f} ms ({spread.p50_low:.0f}–{spread.p50_high:.0f})"


def _failure(turn: TurnRecord) -> list[str]:
    lines = [f"- **{inline(turn.node_id)}** ({turn.status}): {inline(failure_reason(turn))}"]
    text = turn.output.text if turn.output is not None else ""
    if text:
        excerpt = text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"
        lines.append(f"  > {inline(excerpt)}")
    return lines


def _failures(run: RunRecord, turns: Sequence[TurnRecord], figures: RunSummary) -> list[str]:
    """The first `FAILURES_SHOWN` failed or errored turns that count against the run, in record order, then how
    many more there are."""
    failing = figures.failures(turns)
    if not failing:
        return []
    lines = ["## Failures", ""]
    for turn in failing[:FAILURES_SHOWN]:
        lines += _failure(turn)
    if len(failing) > FAILURES_SHOWN:
        lines.append(f"\n… and {len(failing) - FAILURES_SHOWN} more (see `rtflow show {inline(run.run_id)}`)")
    return [*lines, ""]


def render_markdown(run: RunRecord, turns: Sequence[TurnRecord], *, summary: RunSummary | None = None) -> str:
    """The whole summary; `summary` defaults to `RunSummary.of(run, turns)`."""
    figures = summary if summary is not None else RunSummary.of(run, turns)
    sections = [
        *_title(figures),
        *_providers(figures),
        *_turn_taking(figures),
        *_repeats(figures.repeats),
        *_failures(run, turns, figures),
    ]
    return "\n".join(sections).rstrip("\n") + "\n"


def write_markdown(
    run: RunRecord, turns: Sequence[TurnRecord], path: Path, *, summary: RunSummary | None = None
) -> None:
    """Write the summary whole or not at all."""
    document = render_markdown(run, turns, summary=summary)
    with atomic_text_file(path) as handle:
        handle.write(document)
