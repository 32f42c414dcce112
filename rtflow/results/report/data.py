"""Machine-readable exports: JSON (`{run, summary, turns}`), JSONL (one turn per line, streamable) and CSV (flat).

JSON and JSONL hold the records exactly as stored, so `TurnRecord.model_validate` reads them back unchanged; the
JSON's `summary` is the `RunSummary` of those turns. The CSV flattens each turn to the columns a spreadsheet user
filters on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.summary import RunSummary

__all__ = ["CSV_COLUMNS", "JsonlWriter", "csv_row", "turn_input_text", "write_csv", "write_json", "write_jsonl"]

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
)
"""The CSV's columns, in order. `turn` is 1-based, as in node ids."""


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
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(turns: Sequence[TurnRecord], path: Path) -> None:
    """Write one turn per line."""
    with JsonlWriter(path, append=False) as writer:
        for turn in turns:
            writer.write(turn)


class JsonlWriter:
    """Appends turns to a JSONL file one line at a time, flushed at once, so readers can follow a run live."""

    def __init__(self, path: Path, *, append: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a" if append else "w", encoding="utf-8")

    def write(self, turn: TurnRecord) -> None:
        """Append `turn` as one line and flush it to the operating system."""
        self._file.write(turn.model_dump_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def csv_row(turn: TurnRecord) -> dict[str, str | int]:
    """One turn as a flat CSV row keyed by `CSV_COLUMNS`."""
    output = turn.output
    metrics = output.metrics if output is not None else None
    return {
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
    }


def write_csv(turns: Sequence[TurnRecord], path: Path) -> None:
    """Write the turns as CSV with a header row."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for turn in turns:
            writer.writerow(csv_row(turn))
