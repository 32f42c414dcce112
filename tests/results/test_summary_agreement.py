"""One run, one set of figures: the CLI table, `rtflow runs` and `show`, the HTML report, the JSON export and
`RunResult` all show the `RunSummary`'s counts, and those counts mean what its docstrings say."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

import rtflow
from rtflow.cli import main
from rtflow.messages import Message, TurnMetrics, TurnOutput, Usage
from rtflow.results.records import CallAttempt, ErrorInfo, RunRecord, TurnRecord
from rtflow.results.run_result import RunResult
from rtflow.results.store import RunStore
from rtflow.results.summary import RunSummary, TurnFigures
from rtflow.runner.progress import print_summary

RUN_ID = "run-20260102-0007"
T0 = 1_767_312_000.0
RATE_LIMIT = ErrorInfo(kind="rate_limit", message="429 Too Many Requests", status=429, retryable=True)
UNAUTHORIZED = ErrorInfo(kind="authentication", message="401 Unauthorized", status=401)
FLOW = {
    "providers": [
        {
            "id": "openai:realtime:gpt-realtime",
            "label": "realtime",
            "fallback": {"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
        },
        {"id": "openai:realtime:gpt-realtime-mini", "label": "mini"},
    ],
    "prompts": ["{{ question }}"],
    "threads": {
        "japan_travel": [{"question": "q1", "assert": [{"type": "icontains", "value": "q"}]}, {"question": "q2"}],
        "tech_thread": [{"question": "q3", "assert": [{"type": "icontains", "value": "q"}]}],
        "weather": [{"question": "q4"}, {"question": "q5"}],
    },
}


def _call(node: str, provider: str, attempt: int, start: float, error: ErrorInfo | None = None) -> CallAttempt:
    return CallAttempt(
        node_id=node, provider=provider, attempt=attempt, started_at=T0 + start, ended_at=T0 + start + 0.2, error=error
    )


def _output(tokens: int, first_delta_ms: float, total_ms: float, cost: float | None = 0.001) -> TurnOutput:
    return TurnOutput(
        text="You said q",
        usage=Usage(input_tokens=tokens - 10, output_tokens=10, total_tokens=tokens),
        cost=cost,
        metrics=TurnMetrics(first_delta_ms=first_delta_ms, total_ms=total_ms),
    )


def _turn(conversation: str, index: int, status: str, calls: list[CallAttempt], **fields: Any) -> TurnRecord:
    provider = conversation.split("/")[0]
    return TurnRecord.model_validate(
        {
            "run_id": RUN_ID,
            "node_id": f"{conversation}/{index + 1}",
            "conversation_id": conversation,
            "thread_id": conversation.split("/")[1],
            "turn_index": index,
            "provider": provider,
            "provider_id": f"openai:realtime:gpt-{provider}",
            "prompt": "prompt",
            "status": status,
            "request_messages": [Message.of("user", f"q{index + 1}")],
            "attempts": len(calls),
            "calls": calls,
            "started_at": calls[0].started_at if calls else None,
            "ended_at": calls[-1].ended_at if calls else None,
            **fields,
        }
    )


def mixed_turns() -> list[TurnRecord]:
    """Eight of the plan's ten turns: every status, one fallback answer, one chain that ran out, retries."""
    jt2, w1, mini_tt1 = "realtime/japan_travel/2", "realtime/weather/1", "mini/tech_thread/1"
    return [
        _turn("realtime/japan_travel", 0, "passed", [_call("realtime/japan_travel/1", "realtime", 1, 0.0)],
              output=_output(30, 40, 120)),
        # Retried once on the primary, then answered by the chat fallback: a fallback and a retry.
        _turn("realtime/japan_travel", 1, "passed",
              [_call(jt2, "realtime", 1, 0.3, RATE_LIMIT), _call(jt2, "realtime", 2, 0.6, RATE_LIMIT),
               _call(f"{jt2}~chat", "chat", 1, 0.9)],
              provider="chat", is_fallback=True, output=_output(55, 300, 1200, cost=0.002)),
        _turn("realtime/tech_thread", 0, "failed", [_call("realtime/tech_thread/1", "realtime", 1, 0.1)],
              output=_output(30, 50, 150, cost=None)),
        # The whole chain failed: recorded under its last (fallback) node, but an error, not a fallback answer.
        _turn("realtime/weather", 0, "error",
              [_call(w1, "realtime", 1, 0.2, RATE_LIMIT), _call(w1, "realtime", 2, 0.5, RATE_LIMIT),
               _call(f"{w1}~chat", "chat", 1, 0.8, UNAUTHORIZED)],
              provider="chat", is_fallback=True, error=UNAUTHORIZED),
        _turn("realtime/weather", 1, "skipped", [], error=ErrorInfo(kind="skipped", message="turn 1 failed")),
        _turn("mini/japan_travel", 0, "passed", [_call("mini/japan_travel/1", "mini", 1, 0.0)],
              output=_output(20, 60, 200)),
        _turn("mini/japan_travel", 1, "pending", [_call("mini/japan_travel/2", "mini", 1, 0.4)],
              output=_output(20, 90, 260)),
        _turn("mini/tech_thread", 0, "error",
              [_call(mini_tt1, "mini", 1, 0.1, RATE_LIMIT), _call(mini_tt1, "mini", 2, 0.5, UNAUTHORIZED)],
              error=UNAUTHORIZED),
        # mini/weather (two turns) never ran: the run was interrupted.
    ]  # fmt: skip


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, RunResult]:
    """The mixed run in a real SQLite run store, and its `RunResult` as `rtflow.run` would build it."""
    flow_path = tmp_path / "flow.yaml"
    flow_path.write_text(yaml.safe_dump(FLOW))
    plan = rtflow.compile(rtflow.load(flow_path))
    run = RunRecord(
        run_id=RUN_ID,
        flow_path=str(flow_path),
        started_at=T0,
        ended_at=T0 + 3.0,
        status="interrupted",
        options={"concurrency": 4},
        total_turns=plan.counts.turns,
    )
    turns = mixed_turns()
    db = tmp_path / "rtflow.db"
    with RunStore(db) as store:
        store.start_run(run)
        store.save_turns(turns)
    return db, RunResult(run=run, turns=turns, plan=plan, duration_s=2.5)


def test_the_figures_mean_what_the_summary_says(stored: tuple[Path, RunResult]) -> None:
    """Counts per status, fallbacks (answers only), retries (same provider again), attempts, tokens, cost, p50/p95."""
    summary = stored[1].summary
    assert summary.status_counts() == {
        "passed": 3,
        "failed": 1,
        "error": 2,
        "skipped": 1,
        "pending": 1,
        "not_run": 2,
    }
    assert (summary.turns, summary.planned_turns, summary.pass_rate) == (8, 10, 0.3)
    assert (summary.fallbacks, summary.retries, summary.failed_attempts, summary.attempts) == (1, 3, 7, 12)
    assert (summary.tokens, summary.cost) == (155, pytest.approx(0.005))
    assert (summary.first_delta_p50_ms, summary.first_delta_p95_ms) == (60, 300)  # nearest rank of 40 50 60 90 300
    assert (summary.duration_s, summary.peak_in_flight) == (3.0, 4)
    mini, realtime = summary.providers  # by label
    assert realtime.provider == "realtime"  # the chain's primary, also for the turns chat answered or failed
    assert (realtime.passed, realtime.failed, realtime.error, realtime.skipped, realtime.pending) == (2, 1, 1, 1, 0)
    assert (realtime.fallbacks, realtime.retries, realtime.failed_attempts, realtime.attempts) == (1, 2, 5, 8)
    assert mini.provider == "mini"
    assert (mini.passed, mini.error, mini.pending, mini.retries, mini.fallbacks) == (1, 1, 1, 1, 0)
    assert (mini.first_delta_p50_ms, mini.total_p95_ms, mini.cost) == (60, 260, pytest.approx(0.002))


def _figures(figures: TurnFigures) -> dict[str, Any]:
    """What the views print of a summary row: counts, tokens, cost to 4 places, milliseconds whole."""
    shown: dict[str, Any] = {
        name: getattr(figures, name)
        for name in ("passed", "failed", "error", "skipped", "pending", "fallbacks", "retries", "tokens")
    }
    shown["cost"] = None if figures.cost is None else round(figures.cost, 4)
    for name in ("first_delta_p50_ms", "first_delta_p95_ms", "total_p50_ms", "total_p95_ms"):
        value = getattr(figures, name)
        shown[name] = None if value is None else round(value)
    return shown


def _number(text: str) -> int | float | None:
    text = text.strip().replace(",", "").removeprefix("$")
    if text == "-":
        return None
    return float(text) if "." in text else int(text)


_CLI_COLUMNS = {
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "pending": "pending",
    "fallbacks": "fallbacks",
    "retries": "retries",
    "tokens": "tokens",
    "cost $": "cost",
    "ttfd p50 ms": "first_delta_p50_ms",
    "ttfd p95 ms": "first_delta_p95_ms",
    "total p50 ms": "total_p50_ms",
    "total p95 ms": "total_p95_ms",
}


def _cli_table(result: RunResult) -> tuple[dict[str, dict[str, Any]], str]:
    """The end-of-run table's rows by provider (`all` for the total), and the line of status counts under it."""
    stream = io.StringIO()
    print_summary(result, Console(file=stream, width=250, color_system=None))
    lines = stream.getvalue().splitlines()
    header = next(line for line in lines if "┃" in line)
    columns = [cell.strip() for cell in header.strip("┃ ").split("┃")]
    rows: dict[str, dict[str, Any]] = {}
    for line in lines:
        if "│" in line:
            cells = [cell.strip() for cell in line.strip("│ ").split("│")]
            rows[cells[0]] = {
                _CLI_COLUMNS[column]: _number(cell) for column, cell in zip(columns[1:], cells[1:], strict=True)
            }
    status_line = next(line for line in lines if line.startswith("3 passed"))
    return rows, status_line


class _ReportFigures(HTMLParser):
    """The report's `data-figure` values: the run's (listed wherever they appear) and each provider row's."""

    def __init__(self) -> None:
        super().__init__()
        self.run: dict[str, list[Any]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self._provider: str | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("data-provider"):
            self._provider = attributes["data-provider"]
            self.providers[self._provider] = {}
        self._figure = attributes.get("data-figure")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._provider = None

    def handle_data(self, data: str) -> None:
        if self._figure is None:
            return
        value = _number(data)
        if self._provider is not None:
            self.providers[self._provider][self._figure] = value
        else:
            self.run.setdefault(self._figure, []).append(value)
        self._figure = None


def test_every_view_shows_the_same_figures(stored: tuple[Path, RunResult], tmp_path: Path) -> None:
    """CLI table, HTML report, JSON export, store, `rtflow runs` and `show` agree with `RunResult` on every figure."""
    db, result = stored
    summary = result.summary

    with RunStore(db) as store:
        assert store.summary(RUN_ID) == summary
        assert RunSummary.of(store.get_run(RUN_ID), store.turns(RUN_ID)) == summary
    assert result.counts == summary.status_counts()
    assert result.provider_summaries == list(summary.providers)
    assert not result.passed

    # The CLI's end-of-run table: a row per primary provider and a total row.
    rows, status_line = _cli_table(result)
    assert rows == {row.provider: _figures(row) for row in summary.providers} | {"all": _figures(summary)}
    assert status_line == "3 passed, 1 failed, 2 error, 1 skipped, 1 pending, 2 not_run in 3.00s"

    runner = CliRunner(env={"COLUMNS": "200"})
    # The JSON export, through `rtflow export`.
    document_path = tmp_path / "out" / "run.json"
    exported = runner.invoke(main, ["export", RUN_ID, "--db", str(db), "-o", str(document_path)])
    assert exported.exit_code == 0, exported.output
    assert RunSummary.model_validate(json.loads(document_path.read_text())["summary"]) == summary

    # The HTML report, through `rtflow export`.
    report_path = tmp_path / "out" / "report.html"
    assert runner.invoke(main, ["export", RUN_ID, "--db", str(db), "-o", str(report_path)]).exit_code == 0
    report = _ReportFigures()
    report.feed(report_path.read_text(encoding="utf-8"))
    assert report.providers == {row.provider: _figures(row) for row in summary.providers}
    run_figures = _figures(summary) | {
        "not_run": summary.not_run,
        "planned_turns": summary.planned_turns,
        "failed_attempts": summary.failed_attempts,
        "attempts": summary.attempts,
        "peak_in_flight": summary.peak_in_flight,
        "first_delta_p99_ms": round(summary.first_delta_p99_ms or 0),
        "total_p99_ms": round(summary.total_p99_ms or 0),
    }
    assert {name: set(values) for name, values in report.run.items()} == {
        name: {value} for name, value in run_figures.items()
    }

    # `rtflow runs`: passed, failed, error, skipped.
    listed = runner.invoke(main, ["runs", "--db", str(db)])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if RUN_ID in line)
    assert [int(cell) for cell in row.split()[-4:]] == [summary.passed, summary.failed, summary.error, summary.skipped]

    # `rtflow show`: the counts under the transcripts.
    shown = runner.invoke(main, ["show", RUN_ID, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    footer = shown.output.strip().splitlines()[-1]
    assert re.findall(r"(\w+) (\d+)", footer) == [
        *((status, str(count)) for status, count in summary.status_counts().items()),
        ("fallbacks", str(summary.fallbacks)),
        ("retries", str(summary.retries)),
    ]


def test_a_thread_export_summarises_that_thread_alone(stored: tuple[Path, RunResult], tmp_path: Path) -> None:
    """`rtflow export --thread T` summarises T's turns without counting the other threads' as never run."""
    db, _ = stored
    target = tmp_path / "weather.json"
    done = CliRunner().invoke(main, ["export", RUN_ID, "--db", str(db), "-o", str(target), "--thread", "weather"])
    assert done.exit_code == 0, done.output
    summary = RunSummary.model_validate(json.loads(target.read_text())["summary"])
    assert summary.status_counts() == {"error": 1, "skipped": 1}
    assert (summary.planned_turns, summary.fallbacks, summary.retries) == (2, 0, 1)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(0.0, "0.0000"), (0.0123, "0.0123"), (1.5, "1.5000"), (0.00002, "0.000020"), (0.000023456, "0.000023")],
)
def test_a_cost_is_written_alike_everywhere_and_a_tiny_one_is_not_zero(amount: float, shown: str) -> None:
    """The terminal, the cost estimate and the report's compare view write costs with `usd`: four decimals, or
    two significant digits below a hundredth of a cent (a cheap simulated turn once showed `$0.0000`)."""
    from rtflow.messages import usd

    assert usd(amount) == shown


def test_the_report_writes_a_cheap_runs_costs_as_the_terminal_does(tmp_path: Path) -> None:
    """A simulated chat turn costs about a thousandth of a cent: the report's cost card, provider row and each
    turn say so with `usd`, as the terminal does, never `$0.0000`."""
    from rtflow.messages import usd
    from rtflow.results.report import render_html

    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"providers": ["openai:chat:gpt-4.1-mini"], "prompts": ["{{ q }}"],
                                    "tests": [{"vars": {"q": "hi"}}]}))  # fmt: skip
    result = rtflow.run(flow, sim=True, store=False)
    cost = result.summary.cost
    assert cost is not None and 0 < cost < 0.0001
    page = render_html(result.run, list(result.turns), tmp_path, summary=result.summary)
    assert usd(cost) != "0.0000" and f"${usd(cost)}" in page and "$0.0000<" not in page
    assert page.count(usd(cost)) >= 3  # the card, the provider's row, the turn
