"""JSON, JSONL and CSV exports read back to the same records; the format follows the suffix."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from results_samples import make_turns

from rtflow.errors import FlowError, RtflowError
from rtflow.messages import Message
from rtflow.results.records import ErrorInfo, RunRecord, TurnRecord
from rtflow.results.report import CSV_COLUMNS, JsonlWriter, render_html, write_export
from rtflow.results.summary import RunSummary


def test_json_export_round_trips(tmp_path: Path, run_record: RunRecord, turn_records: list[TurnRecord]) -> None:
    """The JSON export is `{run, summary, turns}` and validates back into equal records and their summary."""
    path = write_export(run_record, turn_records, tmp_path / "run.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"run", "summary", "turns"}
    assert RunRecord.model_validate(document["run"]) == run_record
    assert RunSummary.model_validate(document["summary"]) == RunSummary.of(run_record, turn_records)
    assert [TurnRecord.model_validate(turn) for turn in document["turns"]] == turn_records


def test_jsonl_export_round_trips(tmp_path: Path, run_record: RunRecord, turn_records: list[TurnRecord]) -> None:
    """The JSONL export holds one turn per line, each validating back into the same record."""
    path = write_export(run_record, turn_records, tmp_path / "run.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [TurnRecord.model_validate_json(line) for line in lines] == turn_records


def test_jsonl_writer_streams_each_turn_at_once(tmp_path: Path, turn_records: list[TurnRecord]) -> None:
    """A reader sees every turn as soon as `write` returns, before the writer is closed."""
    path = tmp_path / "live" / "run.jsonl"
    with JsonlWriter(path) as writer:
        for count, turn in enumerate(turn_records, start=1):
            writer.write(turn)
            lines = path.read_text(encoding="utf-8").splitlines()
            assert len(lines) == count
            assert TurnRecord.model_validate_json(lines[-1]) == turn


def test_jsonl_writer_starts_a_fresh_file_per_run(tmp_path: Path, turn_records: list[TurnRecord]) -> None:
    """A second writer on the same path (the next run's `-o x.jsonl`) starts the file afresh: no earlier run's lines."""
    path = tmp_path / "run.jsonl"
    with JsonlWriter(path) as first_run:
        for turn in turn_records:
            first_run.write(turn)
    with JsonlWriter(path) as second_run:
        assert path.read_text(encoding="utf-8") == ""  # emptied at open, before the run's first turn
        second_run.write(turn_records[0])
    assert [TurnRecord.model_validate_json(line) for line in path.read_text().splitlines()] == turn_records[:1]


def test_csv_export_reads_back_with_the_csv_module(
    tmp_path: Path, run_record: RunRecord, turn_records: list[TurnRecord]
) -> None:
    """The CSV has the documented columns and one faithful row per turn, quoting included."""
    path = write_export(run_record, turn_records, tmp_path / "run.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(turn_records)
    by_node = {row["node"]: row for row in rows}
    first = by_node["realtime/japan_travel/1"]
    assert first["output"] == 'You said: "Question 1 of japan_travel" (user messages: 1, instructions: none)'
    assert (first["turn"], first["status"], first["tokens"], first["ttfd_ms"]) == ("1", "passed", "30", "40.0")
    fallback = by_node["realtime/japan_travel/2"]
    assert (fallback["provider"], fallback["fallback"], fallback["attempts"]) == ("chat", "yes", "3")
    assert fallback["input"] == "Question 2 of japan_travel"
    error = by_node["realtime/weather/1"]
    assert error["error"] == "authentication: 401 Unauthorized"
    assert (error["output"], error["cost"], error["assertions_total"]) == ("", "", "0")


def test_unknown_suffix_is_a_flow_error(tmp_path: Path, run_record: RunRecord) -> None:
    """An export path with an unsupported suffix is refused with the supported ones named."""
    with pytest.raises(FlowError, match=r"\.json, \.jsonl, \.csv, \.html"):
        write_export(run_record, [], tmp_path / "run.xlsx")


def test_html_report_is_self_contained_and_escapes_output(
    tmp_path: Path, run_record: RunRecord, turn_records: list[TurnRecord]
) -> None:
    """The HTML names no external resource and carries model output only in escaped form."""
    html = render_html(run_record, turn_records, tmp_path)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert html.count("<script") == 1  # the report's own, nonce-guarded script


def test_html_report_of_an_empty_run(tmp_path: Path, run_record: RunRecord) -> None:
    """A run with no turns still renders, with empty-state notes instead of charts."""
    html = render_html(run_record.model_copy(update={"ended_at": None}), [], tmp_path)
    assert "No call attempts were recorded." in html
    assert "No Time to first delta measurements." in html


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path: Path, run_record: RunRecord) -> None:
    """Cells starting with =, +, -, @, tab or CR (or their full-width forms) read back with a leading `'`; plain
    numbers and ordinary text read back unchanged."""
    base = make_turns()[0]
    hostile = {
        "output": '=HYPERLINK("http://evil","x")',
        "provider": "+cmd|' /C calc'!A0",
        "thread": "@SUM(1+1)*cmd|' /C calc'!A0",
        "conversation": "-2+3+cmd|' /C calc'!A0",
        "input": "\t=1+1",
        "error": "\r=1+1",
        "node": "\uff1d1+1",
    }
    turn = base.model_copy(
        update={
            "output": base.output.model_copy(update={"text": hostile["output"]}) if base.output else None,
            "provider": hostile["provider"],
            "thread_id": hostile["thread"],
            "conversation_id": hostile["conversation"],
            "request_messages": [Message.of("user", hostile["input"])],
            "error": ErrorInfo(kind="\r=1+1", message="x"),
            "node_id": hostile["node"],
        }
    )
    plain = base.model_copy(update={"node_id": "n2", "provider": "-1.5", "thread_id": "a=b+c @x"})
    path = write_export(run_record, [turn, plain], tmp_path / "run.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first, second = rows
    for column, raw in hostile.items():
        expected = "'\r=1+1: x" if column == "error" else "'" + raw
        assert first[column] == expected, column
    assert (second["provider"], second["thread"], second["node"]) == ("-1.5", "a=b+c @x", "n2")
    assert (second["cost"], second["tokens"]) == ("0.000100", "30")
    risky = {cell for row in rows for cell in row.values() if cell.startswith(("=", "+", "-", "@", "\t", "\r"))}
    assert risky == {"-1.5"}


def test_a_jsonl_stream_that_cannot_be_written_is_an_rtflow_error(tmp_path: Path) -> None:
    """An unwritable `-o x.jsonl` is one error naming the file, not an OSError traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(RtflowError, match=re.escape(f"{blocker / 'run.jsonl'}: cannot write the JSONL stream")):
        JsonlWriter(blocker / "run.jsonl")
