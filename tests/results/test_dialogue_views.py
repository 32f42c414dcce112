"""A simulated dialogue in the HTML report and in `rtflow show`: the caller's lines and the agent's answers as a
transcript, then why it stopped, in words, and the conversation's verdicts with their reasons, once. `show` also
prints a voice run's turn-taking table and, per turn, its figures, the heard part of a cut answer and the
barge-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dialogue_samples import (
    ANSWERS,
    CALLER_LINES,
    GOAL_REASON,
    HOSTILE_CALLER,
    RUBRIC_REASON,
    VERDICTS,
    dialogue_turn,
    dialogue_turns,
)
from markupsafe import escape
from results_samples import RUN_ID, make_run, make_turns, write_wav
from turn_taking_samples import HEARD, voice_turns

from rtflow.cli import main
from rtflow.messages import AudioOutput, ToolCall
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import render_html
from rtflow.results.report.dialogue import dialogue_ending
from rtflow.results.store import RunStore


def _call(name: str) -> ToolCall:
    return ToolCall(call_id=f"call_{name}", name=name, arguments="{}", output="{}")


def _ended(reason: str, detail: str | None = None, *, tools: tuple[str, ...] = ()) -> TurnRecord:
    """A one-turn dialogue that stopped for `reason`, met by `detail` (None: a record of an older run), the agent
    having called `tools` on that turn."""
    return dialogue_turn(
        0, "Hello.", "Hi.", stop_reason=reason, stop_detail=detail, tool_calls=tuple(_call(name) for name in tools)
    )


def _store(tmp_path: Path, run: RunRecord, turns: list[TurnRecord]) -> Path:
    db = tmp_path / "store" / "rtflow.db"
    with RunStore(db) as store:
        store.start_run(run)
        store.save_turns(turns)
    return db


def _show(db: Path, *arguments: str) -> str:
    result = CliRunner().invoke(main, ["show", "latest", "--db", str(db), *arguments], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_report_reads_a_dialogue_as_who_said_what_then_why_it_stopped(tmp_path: Path) -> None:
    """Caller line, then answer, turn by turn; then the stop reason and every verdict with its reason, in order."""
    audio = AudioOutput(
        file=str(write_wav(tmp_path / "audio" / "answer.wav")), format="wav", duration_s=0.05, sample_rate=24_000
    )
    html = render_html(make_run(flow_path=None), dialogue_turns(audio), tmp_path / "report")
    assert html.count('<span class="role">caller (simulated)</span>') == 3
    assert html.count('<span class="role">agent</span>') == 3
    transcripts = html[html.index('<section id="transcripts">') :]  # the matrix above shows each turn once more
    pieces = [piece for pair in zip(CALLER_LINES, ANSWERS, strict=True) for piece in pair]
    pieces += ["the caller said the stop phrase", *(escape(result.reason) for result in VERDICTS)]
    places = [transcripts.index(escape(piece)) for piece in pieces]
    assert places == sorted(places)
    assert '<div class="dialogue-end" data-stop-reason="phrase" data-status="failed">' in transcripts
    assert "after 3 agent turns" in transcripts
    # The verdicts once, after the dialogue, not on its last turn too.
    assert transcripts.count(escape(RUBRIC_REASON)) == 1
    assert '<span class="badge simulated-caller">simulated caller</span>' in transcripts
    assert '<audio controls preload="none" id="audio-1" src="data:audio/wav;base64,' in transcripts  # embedded


def test_a_caller_line_is_text_never_markup() -> None:
    """A caller line holding a script tag is escaped like any model output."""
    html = render_html(make_run(), dialogue_turns(), Path.cwd())
    assert HOSTILE_CALLER not in html
    assert f'<div class="text caller-line">{escape(HOSTILE_CALLER)}</div>' in html
    assert html.count("<script") == 1  # the report's own


def test_conversations_without_a_dialogue_keep_their_verdicts_on_their_turns() -> None:
    """A scripted conversation shows no dialogue ending and no caller; its turns keep their assertions."""
    html = render_html(make_run(), make_turns(), Path.cwd())
    assert 'class="dialogue-end"' not in html and "caller (simulated)" not in html
    assert html.count('<ul class="assertions">') == 3


def test_a_dialogue_that_never_ended_shows_its_lines_and_no_ending() -> None:
    """An interrupted run's dialogue has no stop reason: its turns show, no ending is made up."""
    turns = dialogue_turns()[:2]
    html = render_html(make_run(), turns, Path.cwd())
    assert escape(CALLER_LINES[0]) in html and 'class="dialogue-end"' not in html
    assert dialogue_ending(turns) is None


@pytest.mark.parametrize(
    ("turn", "words"),
    [
        (_ended("phrase"), "the caller said the stop phrase"),
        (_ended("tool", "issue_refund", tools=("lookup", "issue_refund")), "the agent called issue_refund"),
        (_ended("judge", "the refund <b>is</b> confirmed"), "the judge found: the refund <b>is</b> confirmed"),
        (_ended("max_turns"), "reached max_turns"),
        (_ended("max_duration"), "reached max_duration"),
        (_ended("replay_ended"), "the replayed caller had no more lines"),
        (_ended("caller_error"), "the caller was out of role"),
        (_ended("newer_reason"), "stopped: newer_reason"),
    ],
)
def test_stop_reasons_in_words(tmp_path: Path, turn: TurnRecord, words: str) -> None:
    """Each stop reason in words, with the tool or judge condition the record says met it; the report escapes
    them like any other text."""
    ending = dialogue_ending([turn])
    assert ending is not None and ending.words == words
    html = render_html(make_run(), [turn], tmp_path)
    assert f'<p class="stop-reason"><span class="label">stopped</span> {escape(words)} ' in html


@pytest.mark.parametrize(
    ("turn", "words"),
    [
        (_ended("tool", tools=("get_weather",)), "the agent called get_weather"),
        (_ended("tool", tools=("lookup", "issue_refund")), "the agent called its stop tool"),
        (_ended("tool"), "the agent called its stop tool"),
        (_ended("judge"), "the judge found its stop condition met"),
    ],
)
def test_an_older_run_without_stop_detail_is_said_without_a_guess(turn: TurnRecord, words: str) -> None:
    """Records of older runs have no `stop_detail`: the tool is the last turn's when it called exactly one, and
    otherwise the reason is said alone, never a guess between several."""
    ending = dialogue_ending([turn])
    assert ending is not None and ending.words == words


def test_show_prints_the_dialogue_its_stop_reason_and_verdicts(tmp_path: Path) -> None:
    """`rtflow show`: each caller line then the answer, then why it stopped and the verdicts, once."""
    output = _show(_store(tmp_path, make_run(), dialogue_turns()))
    lines = [
        *(
            f"{who}: {text}"
            for pair in zip(CALLER_LINES, ANSWERS, strict=True)
            for who, text in zip(("caller (simulated)", "agent"), pair, strict=True)
        ),
        "stopped: the caller said the stop phrase  (after 3 agent turns)",
        "conversation verdict [failed]",
        *(f"{'✓' if result.passed else '✗'} {result.type} {result.reason}" for result in VERDICTS),
    ]
    places = [output.index(line) for line in lines]
    assert places == sorted(places)
    assert output.count(GOAL_REASON) == 1
    assert "agent/refund  (thread refund)  simulated caller" in output
    assert "turn-taking" not in output  # a text dialogue has no turn-taking figures


def test_show_cleans_a_judge_condition(tmp_path: Path) -> None:
    """The judge's condition, as recorded, is made terminal-safe like any other text of the record."""
    turn = _ended("judge", "the refund \x1b[2Jis confirmed")
    output = _show(_store(tmp_path, make_run(), [turn]))
    assert "stopped: the judge found: the refund is confirmed" in output
    assert "\x1b" not in output


def test_show_prints_turn_taking_figures_the_heard_part_and_the_barge_in(tmp_path: Path) -> None:
    """A voice run: the percentiles table as `rtflow run` prints it; per turn its figures, and for the cut answer
    what was heard and the barge-in (plan, audio_end_ms)."""
    output = _show(_store(tmp_path, make_run(), voice_turns()))
    assert "turn-taking, ms" in output and "1 answer cut short by the caller (barge-in)" in output
    table = output[output.index("turn-taking, ms") :]
    assert "ttfa" in table and "yield done" in table and "tool silence" in table
    assert "ttfb 100 ms · ttfa 180 ms · response latency 400 ms · yield 20 ms" in output
    assert f"heard: {HEARD}" in output
    assert "barge-in after 600 ms heard · 640 ms after the request · truncated at audio_end_ms 600" in output


def test_show_of_a_text_run_prints_no_turn_taking(tmp_path: Path) -> None:
    """A text-only run looks as it did: no table, no per-turn figures."""
    output = _show(_store(tmp_path, make_run(), make_turns()), "--thread", "japan_travel")
    assert RUN_ID in output and "turn-taking" not in output and "ttfb" not in output
