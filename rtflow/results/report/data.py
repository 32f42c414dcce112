"""Machine-readable exports: JSON (`{run, summary, turns}`), JSONL (one turn per line, streamable) and CSV (flat).

JSON and JSONL hold the records exactly as stored, so `TurnRecord.model_validate` reads them back unchanged; the
JSON's `summary` is the `RunSummary` of those turns. The CSV flattens each turn to the columns a spreadsheet user
filters on, with every cell a spreadsheet would take for a formula made plain text (`spreadsheet_safe`).

Every export of a finished run is written whole or not at all (`atomic_text_file`). The streamed JSONL of a
running run (`JsonlWriter`) starts the file afresh and appends each finished turn as one write.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from rtflow.errors import RtflowError
from rtflow.messages import TurnOutput
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report.atomic import atomic_text_file
from rtflow.results.summary import RunSummary
from rtflow.results.verdicts import failure_reason

__all__ = [
    "CSV_COLUMNS",
    "JsonlWriter",
    "csv_row",
    "spreadsheet_safe",
    "turn_input_text",
    "write_csv",
    "write_json",
    "write_jsonl",
]

CSV_COLUMNS = (
    "run",
    "node",
    "conversation",
    "thread",
    "turn",
    "provider",
    "fallback",
    "status",
    "attempts",
    "input",
    "output",
    "error",
    "assertions_passed",
    "assertions_total",
    "tokens",
    "cost",
    "ttfd_ms",
    "total_ms",
    "ttfb_ms",
    "ttfa_ms",
    "response_latency_ms",
    "yield_ms",
    "heard_text",
    "interrupted_at_ms",
    "description",
    "failure_reason",
    "vars",
)
"""The CSV's columns, in order. `turn` is 1-based, as in node ids. The turn-taking columns are the `TurnMetrics`
of the same name; `heard_text` is what the caller heard of an answer cut short and `interrupted_at_ms` when the
caller barged in, from the request (both empty for an answer heard whole). `description` is the test's,
`failure_reason` says why a turn did not pass (empty for a passed or ungraded one), and `vars` holds the
turn's vars as one JSON object: one column per var would change the header from suite to suite (and leave most
cells empty when tests use different vars), and JSON keeps numbers, lists and nesting as they were."""


def turn_input_text(turn: TurnRecord) -> str:
    """What the user said this turn: the text (or transcript) of the last user message sent."""
    for message in reversed(turn.request_messages):
        if message.role == "user":
            return message.text
    return ""


def export_document(
    run: RunRecord, turns: Sequence[TurnRecord], *, summary: RunSummary | None = None
) -> dict[str, Any]:
    """The JSON export's document; `summary` defaults to the summary of the whole run from `turns`."""
    return {
        "run": run.model_dump(mode="json"),
        "summary": (summary if summary is not None else RunSummary.of(run, turns)).model_dump(mode="json"),
        "turns": [turn.model_dump(mode="json") for turn in turns],
    }


def write_json(run: RunRecord, turns: Sequence[TurnRecord], path: Path, *, summary: RunSummary | None = None) -> None:
    """Write `{run, summary, turns}` as indented JSON."""
    document = export_document(run, turns, summary=summary)
    with atomic_text_file(path) as handle:
        handle.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(turns: Sequence[TurnRecord], path: Path) -> None:
    """Write one turn per line."""
    with atomic_text_file(path) as handle:
        for turn in turns:
            handle.write(turn.model_dump_json() + "\n")


class JsonlWriter:
    """Streams turns to a JSONL file while a run goes, one line per turn, so readers can follow the run live.

    Opening starts the file afresh: it holds this run's turns, never an earlier run's. It is not written to a
    temporary file and renamed, as the other exports are, because that would show a reader nothing until the
    run ends. Each line is appended in one write; a SIGKILL can still cut the last line short (Linux stops a
    write to a file between pages for a fatal signal), so a reader of a killed run's stream drops a last line
    with no newline, as `tail -f` readers do. The run store holds every turn whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_BINARY", 0)
            self._descriptor: int | None = os.open(path, flags, 0o666)
        except OSError as exc:
            raise RtflowError(f"{path}: cannot write the JSONL stream: {exc}") from exc

    def write(self, turn: TurnRecord) -> None:
        """Append `turn` as one line, handed to the operating system before this returns."""
        if self._descriptor is None:
            raise RtflowError(f"{self.path}: the JSONL stream is closed")
        line = memoryview((turn.model_dump_json() + "\n").encode("utf-8"))
        try:
            while line:  # a regular file takes it all at once unless the disk fills up
                line = line[os.write(self._descriptor, line) :]
        except OSError as exc:
            raise RtflowError(f"{self.path}: cannot write the JSONL stream: {exc}") from exc

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list, and the full-width forms
that some spreadsheets also take)."""
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(cell: str) -> str:
    """`cell`, with a `'` in front when a spreadsheet would take it for a formula (`=1+1`, `@SUM(...)`,
    `-2+3`); a plain number (`-1.5`) is left as it is, since a spreadsheet reads it as a number."""
    if cell.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _turn_taking_cells(output: TurnOutput | None) -> dict[str, str]:
    """The turn-taking columns of a turn (appended after the older ones so existing readers keep their places)."""
    metrics = output.metrics if output is not None else None
    cut = output.interruption if output is not None else None
    return {
        "ttfb_ms": _number(metrics.ttfb_ms if metrics is not None else None, 1),
        "ttfa_ms": _number(metrics.ttfa_ms if metrics is not None else None, 1),
        "response_latency_ms": _number(metrics.response_latency_ms if metrics is not None else None, 1),
        "yield_ms": _number(metrics.yield_ms if metrics is not None else None, 1),
        "heard_text": (output.heard_text or "") if output is not None else "",
        "interrupted_at_ms": _number(cut.at_ms if cut is not None else None, 1),
    }


def csv_row(turn: TurnRecord) -> dict[str, str | int]:
    """One turn as a flat CSV row keyed by `CSV_COLUMNS`, every text cell `spreadsheet_safe`."""
    output = turn.output
    metrics = output.metrics if output is not None else None
    row: dict[str, str | int] = {
        "run": turn.run_id,
        "node": turn.node_id,
        "conversation": turn.conversation_id,
        "thread": turn.thread_id,
        "turn": turn.turn_index + 1,
        "provider": turn.provider,
        "fallback": "yes" if turn.is_fallback else "no",
        "status": turn.status,
        "attempts": turn.attempts,
        "input": turn_input_text(turn),
        "output": output.text if output is not None else "",
        "error": f"{turn.error.kind}: {turn.error.message}" if turn.error is not None else "",
        "assertions_passed": sum(result.passed for result in turn.assertions),
        "assertions_total": len(turn.assertions),
        "tokens": output.usage.total_tokens if output is not None else 0,
        "cost": _number(output.cost if output is not None else None, 6),
        "ttfd_ms": _number(metrics.first_delta_ms if metrics is not None else None, 1),
        "total_ms": _number(metrics.total_ms if metrics is not None else None, 1),
        **_turn_taking_cells(output),
        "description": turn.description or "",
        "failure_reason": failure_reason(turn),
        "vars": json.dumps(turn.vars, ensure_ascii=False, default=str),
    }
    return {column: spreadsheet_safe(cell) if isinstance(cell, str) else cell for column, cell in row.items()}


def write_csv(turns: Sequence[TurnRecord], path: Path) -> None:
    """Write the turns as CSV with a header row."""
    with atomic_text_file(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for turn in turns:
            writer.writerow(csv_row(turn))
