"""Model, server and flow text never steers the terminal: `show` and `runs` print it without control sequences."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from results_samples import RUN_ID, make_run, make_turns
from rich.console import Console

import rtflow
from rtflow.cli import main
from rtflow.log import configure_logging, get_logger
from rtflow.messages import ToolCall, TurnOutput
from rtflow.results.records import AssertionResult, ErrorInfo
from rtflow.results.run_result import RunResult
from rtflow.results.store import RunStore
from rtflow.runner.progress import print_summary
from rtflow.terminal import terminal_safe, terminal_safe_record

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CONTROL_CHARACTERS = {chr(code) for code in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (f"a{TITLE}b", "ab"),  # OSC ended by BEL: the window title
        ("a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink, ended by ESC \
        (f"a{CLEAR}b", "ab"),  # CSI: clear the screen
        ("\x1b[1;31mred\x1b[0m", "red"),  # SGR colours
        ("a\x9b2Jb\x9d0;t\x9cc", "abc"),  # 8-bit CSI and OSC
        ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel)
        ("a\x1bcb\x1b7c", "abc"),  # two-character escapes: reset, save cursor
        ("a\x1b]0;never ended", "a0;never ended"),  # incomplete: its introducer goes, the rest is plain text
        ("bell\x07 back\x08 cr\r del\x7f nul\x00", "bell back cr del nul"),
        ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
        ("ünïcödé and 日本語 stay", "ünïcödé and 日本語 stay"),
    ],
)
def test_terminal_safe_removes_sequences_and_control_characters(raw: str, shown: str) -> None:
    """Each kind of escape sequence is removed whole; stray control characters go; newline, tab and text stay."""
    assert terminal_safe(raw) == shown


def test_terminal_safe_record_cleans_every_string_keys_included() -> None:
    """A whole record is cleaned, nested fields and dictionary keys too, and still validates."""
    turn = make_turns()[0].model_copy(update={"vars": {f"q{CLEAR}": [f"x{TITLE}"]}, "description": f"d{CLEAR}"})
    cleaned = terminal_safe_record(turn)
    assert cleaned.vars == {"q": ["x"]} and cleaned.description == "d"
    assert cleaned.output == turn.output


def test_show_and_runs_print_no_control_sequences(tmp_path: Path) -> None:
    """A turn whose output, tool call, error, assertion and vars hold escape sequences reaches stdout without them."""
    hostile = make_turns()
    answered, _fallback, _failed, errored, skipped = hostile
    hostile[0] = answered.model_copy(
        update={
            "output": TurnOutput(
                text=f"before {TITLE}{CLEAR}after",
                tool_calls=[ToolCall(call_id="c", name=f"tool{CLEAR}", arguments="{}", output=f"out\x9b2J{TITLE}")],
            ),
            "assertions": [
                AssertionResult(type="icontains", passed=False, score=0, reason=f"reason {TITLE}\x1b[1A end")
            ],
        }
    )
    hostile[3] = errored.model_copy(
        update={"error": ErrorInfo(kind="server_error", message=f"boom \x1b[31m{TITLE}red\x1b[0m done")}
    )
    hostile[4] = skipped.model_copy(update={"vars": {"question": f"ask {CLEAR}"}, "request_messages": []})
    db = tmp_path / "rtflow.db"
    with RunStore(db) as store:
        store.start_run(make_run(flow_path=f"flows/{TITLE}conversation.yaml", description=CLEAR))
        store.save_turns(hostile)
    runner = CliRunner()
    shown = runner.invoke(main, ["show", RUN_ID, "--db", str(db)], terminal_width=200)
    listed = runner.invoke(main, ["runs", "--db", str(db)], terminal_width=200)
    for result in (shown, listed):
        assert result.exit_code == 0, result.output
        assert not CONTROL_CHARACTERS & set(result.output), repr(result.output)
        assert "pwned" not in result.output and "[2J" not in result.output
    assert "before after" in shown.output and "tool(" in shown.output and "boom red done" in shown.output
    assert "reason  end" in shown.output and "ask " in shown.output
    assert "conversation.yaml" in listed.output


def test_the_run_summary_prints_no_control_sequences() -> None:
    """The end-of-run failure lines carry the error and the assertion reasons, without their escapes."""
    turns = make_turns()
    _answered, _fallback, failed, errored, _skipped = turns
    turns[2] = failed.model_copy(
        update={"assertions": [AssertionResult(type="equals", passed=False, score=0, reason=f"said {TITLE}no")]}
    )
    turns[3] = errored.model_copy(update={"error": ErrorInfo(kind="server_error", message=f"boom {CLEAR}done")})
    plan = rtflow.compile(rtflow.load(Path(__file__).resolve().parents[2] / "flows" / "conversation.yaml"))
    result = RunResult(run=make_run(), turns=turns, plan=plan, duration_s=1.0)
    out = io.StringIO()
    print_summary(result, Console(file=out, width=200, force_terminal=False, color_system=None))
    printed = out.getvalue()
    assert not CONTROL_CHARACTERS & set(printed), repr(printed)
    assert "said no" in printed and "boom done" in printed


def test_console_log_lines_print_no_control_sequences() -> None:
    """A log line rendered for a person (console format) drops escapes a server or a model put in its values."""
    out = io.StringIO()
    configure_logging(log_format="console", level="warning", stream=out)
    try:
        get_logger().warning("realtime.protocol_warning", warning=f"odd {TITLE}frame{CLEAR}")
    finally:
        configure_logging(log_format="json", level="warning", stream=io.StringIO())
    assert "odd frame" in out.getvalue()
    assert "pwned" not in out.getvalue() and "\x1b]" not in out.getvalue()
