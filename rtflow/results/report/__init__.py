"""Exports of a run: JSON, JSONL, CSV, the self-contained HTML report, JUnit XML and a Markdown summary.

`write_export(run, turns, path)` picks the format from the file's suffix and writes the file whole or not at
all (`atomic`). `JsonlWriter` streams turns to a JSONL file, started afresh, while a run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rtflow.errors import FlowError, RtflowError
from rtflow.lazy_names import lazy_names
from rtflow.output_paths import EXPORT_FORMATS, export_format_problem
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.summary import RunSummary

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and editors
    from rtflow.results.report.comparison_view import ReportBaseline
    from rtflow.results.report.data import CSV_COLUMNS, JsonlWriter, csv_row, write_csv, write_json, write_jsonl
    from rtflow.results.report.html import render_html, write_html
    from rtflow.results.report.junit import render_junit, write_junit
    from rtflow.results.report.markdown import render_markdown, write_markdown

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "JsonlWriter",
    "ReportBaseline",
    "csv_row",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_csv",
    "write_export",
    "write_html",
    "write_json",
    "write_jsonl",
    "write_junit",
    "write_markdown",
]

# Resolved on first use: a run that streams its JSONL (`data`) does not load the HTML report's renderers.
_LAZY = {
    "ReportBaseline": "rtflow.results.report.comparison_view",
    **dict.fromkeys(["CSV_COLUMNS", "JsonlWriter", "csv_row", "write_csv", "write_json", "write_jsonl"],
                    "rtflow.results.report.data"),
    **dict.fromkeys(["render_html", "write_html"], "rtflow.results.report.html"),
    **dict.fromkeys(["render_junit", "write_junit"], "rtflow.results.report.junit"),
    **dict.fromkeys(["render_markdown", "write_markdown"], "rtflow.results.report.markdown"),
}  # fmt: skip
__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)


def write_export(
    run: RunRecord,
    turns: Sequence[TurnRecord],
    path: str | Path,
    *,
    summary: RunSummary | None = None,
    baseline: ReportBaseline | None = None,
) -> Path:
    """Write the run in the format its suffix names (`.json`, `.jsonl`, `.csv`, `.html`/`.htm`, `.xml` for JUnit,
    `.md`/`.markdown` for a Markdown summary); returns the path.

    The JSON, HTML, JUnit and Markdown carry `summary`, by default `RunSummary.of(run, turns)`: the whole run's.
    Pass one built with `planned_turns=len(turns)` when `turns` are a deliberate part of the run (one thread's).
    With `baseline` (another run's record and turns), the HTML report opens with a compare view; the other
    formats have no place for one and raise `FlowError` rather than drop it."""
    target = Path(path)
    suffix = target.suffix.lower()
    problem = export_format_problem(target)
    if problem is not None:
        raise FlowError(f"{target}: {problem}")
    if baseline is not None and suffix not in (".html", ".htm"):
        raise FlowError(f"{target}: only the HTML report compares with a baseline run")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Each format's module only when it is written: a CSV export does not load the HTML report's renderers.
        if suffix in (".json", ".jsonl", ".csv"):
            from rtflow.results.report.data import write_csv, write_json, write_jsonl

            if suffix == ".json":
                write_json(run, turns, target, summary=summary)
            elif suffix == ".jsonl":
                write_jsonl(turns, target)
            else:
                write_csv(turns, target)
        elif suffix == ".xml":
            from rtflow.results.report.junit import write_junit

            write_junit(run, turns, target, summary=summary)
        elif suffix in (".md", ".markdown"):
            from rtflow.results.report.markdown import write_markdown

            write_markdown(run, turns, target, summary=summary)
        else:
            from rtflow.results.report.html import write_html

            write_html(run, turns, target, summary=summary, baseline=baseline)
    except OSError as exc:
        raise RtflowError(f"{target}: cannot write the export: {exc}") from exc
    return target
