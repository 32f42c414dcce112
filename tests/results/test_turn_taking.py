"""Turn-taking figures of a voice run: defined once in the summary, then shown by the CLI, the exports and the
report without counting anything themselves. A text-only run shows none of them."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path

import pytest
from results_samples import HOSTILE_OUTPUT, T0, make_run, make_turns
from rich.console import Console
from turn_taking_samples import CUT, FULL_ANSWER, HEARD, voice_turn, voice_turns

import rtflow
from rtflow.messages import TurnMetrics
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import CSV_COLUMNS, render_html, write_export
from rtflow.results.report.charts import barge_ins
from rtflow.results.report.html import AnswerPart, answer_parts
from rtflow.results.run_result import RunResult
from rtflow.results.summary import Percentiles, RunSummary
from rtflow.runner.progress import print_summary

ROOT = Path(__file__).resolve().parents[2]


def _summary(turns: list[TurnRecord]) -> RunSummary:
    return RunSummary.of(make_run(total_turns=len(turns)), turns)


def test_turn_taking_percentiles_are_taken_over_the_turns_that_have_each_metric() -> None:
    """p50/p90/p95 by nearest rank per metric; tool silence pools every round; absent metrics are left out."""
    summary = _summary(voice_turns())
    assert list(summary.timing) == [
        "ttfb",
        "ttfa",
        "response_latency",
        "yield",
        "yield_done",
        "tool_silence",
        "agent_speaking",
    ]
    assert summary.timing["ttfb"] == Percentiles(p50=200.0, p90=300.0, p95=300.0, count=3)
    assert summary.timing["response_latency"] == Percentiles(p50=500.0, p90=700.0, p95=700.0, count=3)
    assert summary.timing["yield"] == Percentiles(p50=20.0, p90=20.0, p95=20.0, count=1)
    assert summary.timing["tool_silence"] == Percentiles(p50=1100.0, p90=1300.0, p95=1300.0, count=3)
    assert summary.timing["agent_speaking"].count == 2
    assert summary.interrupted == 1 and summary.has_turn_taking

    mini, voice = summary.providers
    assert (mini.provider, voice.provider) == ("mini", "voice")
    assert "yield" not in mini.timing and mini.interrupted == 0
    assert mini.timing["tool_silence"] == Percentiles(p50=1300.0, p90=1300.0, p95=1300.0, count=1)
    assert voice.timing["tool_silence"].count == 2 and voice.interrupted == 1


def test_a_text_only_run_has_no_turn_taking_figures(run_record: RunRecord, turn_records: list[TurnRecord]) -> None:
    """No turn has a turn-taking metric: no timing, no interruptions, and the views print nothing new."""
    summary = RunSummary.of(run_record, turn_records)
    assert (summary.timing, summary.interrupted) == ({}, 0)
    assert all(not row.timing for row in summary.providers)
    result = RunResult(run=run_record, turns=turn_records, plan=_plan(), duration_s=1.0)
    printed = _printed(result, width=200)
    assert "turn-taking" not in printed and "cut short" not in printed
    html = render_html(run_record, turn_records, Path.cwd())
    assert '<table class="turn-taking">' not in html and '<line class="barge-in"' not in html
    assert 'class="cut-label"' not in html and 'class="interruption"' not in html


def test_text_answers_have_first_byte_figures_but_no_turn_taking_to_show() -> None:
    """ttfb and response latency alone (a text answer's first delta) are figures, but shown nowhere new."""
    turns = [
        voice_turn("chat", "hello", index, TurnMetrics(first_delta_ms=value, ttfb_ms=value, response_latency_ms=value))
        for index, value in enumerate((40.0, 60.0))
    ]
    summary = _summary(turns)
    assert list(summary.timing) == ["ttfb", "response_latency"]
    assert summary.timing["ttfb"] == Percentiles(p50=40.0, p90=60.0, p95=60.0, count=2)
    assert not summary.has_turn_taking and not summary.providers[0].has_turn_taking
    result = RunResult(run=make_run(total_turns=2), turns=turns, plan=_plan(), duration_s=1.0)
    assert "turn-taking" not in _printed(result, width=200)
    html = render_html(make_run(), turns, Path.cwd())
    assert '<table class="turn-taking">' not in html and "ttfb 40 ms" not in html


def test_old_summaries_without_turn_taking_figures_still_load() -> None:
    """A summary exported before these figures existed reads back with none of them."""
    document = _summary(make_turns()).model_dump(mode="json")
    del document["timing"], document["interrupted"]
    for row in document["providers"]:
        del row["timing"], row["interrupted"]
    summary = RunSummary.model_validate(document)
    assert (summary.timing, summary.interrupted) == ({}, 0)


def _plan() -> rtflow.Plan:
    return rtflow.compile(rtflow.load(ROOT / "flows" / "conversation.yaml"))


def _printed(result: RunResult, *, width: int) -> str:
    out = io.StringIO()
    print_summary(result, Console(file=out, width=width, force_terminal=False, color_system=None))
    return out.getvalue()


def test_the_cli_summary_prints_turn_taking_within_80_columns() -> None:
    """A compact table of p50/p90/p95 (and n) per metric the run has, in ms, and the count of cut answers."""
    turns = voice_turns()
    result = RunResult(run=make_run(total_turns=len(turns)), turns=turns, plan=_plan(), duration_s=1.0)
    printed = _printed(result, width=80)
    lines = printed.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("turn-taking, ms")))
    header = lines[start + 1].split()
    assert header == ["metric", "p50", "p90", "p95", "n"]
    rows = {}
    for line in lines[start + 3 :]:
        if not line.startswith(" "):
            break
        *label, p50, p90, p95, count = line.split()
        rows[" ".join(label)] = [p50, p90, p95, count]
    assert rows == {
        "ttfb": ["200", "300", "300", "3"],
        "ttfa": ["250", "380", "380", "3"],
        "response latency": ["500", "700", "700", "3"],
        "yield": ["20", "20", "20", "1"],
        "yield done": ["55", "55", "55", "1"],
        "tool silence": ["1,100", "1,300", "1,300", "3"],
        "agent speaking": ["600", "2,500", "2,500", "2"],
    }
    assert "1 answer cut short by the caller (barge-in)" in printed
    turn_taking = lines[start : start + 3 + len(rows) + 1]
    assert all(len(line.rstrip()) <= 80 for line in turn_taking), turn_taking


def test_csv_appends_the_turn_taking_columns(tmp_path: Path) -> None:
    """The older columns keep their order; each turn's ttfb, ttfa, latency, yield, heard text and cut follow."""
    assert CSV_COLUMNS[18:24] == (
        "ttfb_ms",
        "ttfa_ms",
        "response_latency_ms",
        "yield_ms",
        "heard_text",
        "interrupted_at_ms",
    )
    assert CSV_COLUMNS[:18][-2:] == ("ttfd_ms", "total_ms")
    turns = voice_turns()
    path = write_export(make_run(), turns, tmp_path / "turns.csv")
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == list(CSV_COLUMNS)
    cut, whole, _, text_like = rows
    assert [cut[name] for name in CSV_COLUMNS[18:24]] == ["100.0", "180.0", "400.0", "20.0", HEARD, "640.0"]
    assert (whole["yield_ms"], whole["heard_text"], whole["interrupted_at_ms"]) == ("", "", "")
    assert all(text_like[name] == "" for name in CSV_COLUMNS[18:24])
    assert cut["output"] == FULL_ANSWER


def test_json_and_jsonl_exports_carry_the_figures_and_the_records(tmp_path: Path) -> None:
    """The JSON's summary holds the turn-taking figures; JSONL lines are whole records (heard text, cut, events)."""
    turns = voice_turns()
    document = json.loads(write_export(make_run(), turns, tmp_path / "run.json").read_text())
    assert document["summary"]["timing"]["ttfb"] == {"p50": 200.0, "p90": 300.0, "p95": 300.0, "count": 3}
    assert document["summary"]["interrupted"] == 1
    assert RunSummary.model_validate(document["summary"]) == RunSummary.of(make_run(), turns)
    lines = write_export(make_run(), turns, tmp_path / "run.jsonl").read_text().splitlines()
    first = TurnRecord.model_validate_json(lines[0])
    assert first == turns[0]
    assert first.output is not None and first.output.interruption == CUT and first.output.heard_text == HEARD


@pytest.mark.parametrize(
    ("text", "heard", "parts"),
    [
        ("one two three", "one two", [("one two ", True), ("three", False)]),
        ("one two", "one two", [("one two", True)]),
        ("one two", "", [("one two", False)]),
        # What the agent said after the cut (a later response) is joined onto both, and was heard.
        ("one two three\nlater", "one\nlater", [("one ", True), ("two three", False), ("\nlater", True)]),
        ("one two", "something else", None),
    ],
)
def test_answer_parts_split_an_answer_at_the_cut(text: str, heard: str, parts: list[tuple[str, bool]] | None) -> None:
    """The heard beginning, the unheard rest, and any heard later text; None when `heard` is not such a part."""
    expected = None if parts is None else [AnswerPart(piece, was_heard) for piece, was_heard in parts]
    assert answer_parts(text, heard) == expected


def test_the_report_sets_the_heard_part_apart_and_escapes_it() -> None:
    """Heard text normal, the rest struck through with where it was cut, the barge-in described, all escaped."""
    turns = voice_turns()
    html = render_html(make_run(), turns, Path.cwd())
    heard, unheard = HEARD, FULL_ANSWER.removeprefix(HEARD + " ")
    assert f'<span class="answer-heard">{escape(heard + " ")}</span>' in html
    assert '<span class="cut-label">not heard — cut at 600 ms</span>' in html
    assert f'<s class="answer-unheard" title="not heard — cut at 600 ms">{escape(unheard)}</s>' in html
    assert "<b>by</b>" not in html
    assert (
        "barge-in after 600 ms heard · 640 ms after the request · truncated at audio_end_ms 600 · "
        "response ended: client_cancelled"
    ) in html
    assert "ttfb 100 ms · ttfa 180 ms · response latency 400 ms · yield 20 ms" in html
    assert "tool silence 900, 1,100 ms" in html


def test_the_report_summary_shows_the_turn_taking_table() -> None:
    """The run's percentiles, then each provider's when there are several; the interrupted count as a card."""
    html = render_html(make_run(), voice_turns(), Path.cwd())
    assert '<table class="turn-taking">' in html
    assert (
        '<tr data-scope="all" data-metric="ttfb"><th scope="row">ttfb</th><td data-percentile="p50">200</td>'
        '<td data-percentile="p90">300</td><td data-percentile="p95">300</td><td data-percentile="count">3</td></tr>'
    ) in html
    assert '<tr data-scope="mini" data-metric="tool_silence">' in html
    assert '<tr data-scope="voice" data-metric="yield">' in html
    assert '<span data-figure="interrupted">1</span>' in html


def test_an_unsplittable_heard_text_is_shown_beside_the_whole_answer() -> None:
    """When the heard text is not a part of the answer, the report shows both as they are, escaped."""
    turn = voice_turn(
        "voice", "odd", 0, TurnMetrics(ttfa_ms=10.0), text="Whole answer.", heard_text=HOSTILE_OUTPUT, interruption=CUT
    )
    html = render_html(make_run(), [turn], Path.cwd())
    assert '<div class="text output-text">Whole answer.</div>' in html
    assert f"the caller heard: {escape(HOSTILE_OUTPUT)}" in html
    assert HOSTILE_OUTPUT not in html and '<s class="answer-unheard"' not in html


def test_the_timeline_marks_the_barge_in_on_the_answering_bar() -> None:
    """At the request (its event) plus the cut's time from it, on the answering attempt's bar, escaped."""
    turns = voice_turns()
    (mark,) = barge_ins(turns)
    assert mark.conversation_id == "voice/rome"
    assert mark.at == pytest.approx(T0 + 0.5 + 0.64)
    html = render_html(make_run(), turns, Path.cwd())
    assert html.count('<line class="barge-in"') == 1
    assert '<span class="key barge-in"></span>barge-in' in html
