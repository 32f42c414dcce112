"""Finding the failures of a run: `rtflow show --failed/--status`, the CSV's reasons and the summary's pointer.

One simulated run holds every status: a turn that fails its assertion, one the server errors on (no retries),
the turn skipped after it, and turns that pass.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from rtflow.cli import main
from rtflow.results.records import TurnRecord
from rtflow.results.run_result import RunResult
from rtflow.results.store import RunStore
from rtflow.runner.progress import RunProgress, print_summary

FLOW = {
    "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
    "prompts": ["{{ question }}"],
    "execution": {"retries": 0},
    "threads": {
        "a": [
            {"question": "hello", "description": "greets"},
            {
                "question": "and then",
                "topic": "travel",
                "description": "asks again",
                "assert": [{"type": "equals", "value": "never said"}],
            },
        ],
        "b": [{"question": "boom now"}, {"question": "after the boom"}],
        "c": [{"question": "fine"}],
    },
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run store after one run of FLOW: a/2 failed, b/1 errored, b/2 skipped, a/1 and c/1 passed."""
    folder = tmp_path_factory.mktemp("failures")
    (folder / "flow.yaml").write_text(yaml.safe_dump(FLOW))
    store = folder / "rtflow.db"
    args = ["run", str(folder / "flow.yaml"), "--sim", "--db", str(store), "--sim-fault", "server_error;match=boom"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    return store


def show(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["show", "latest", "--db", str(db), *args], terminal_width=200)
    return result.exit_code, result.output


def test_show_failed_lists_failed_and_errored_turns_in_their_conversations(db: Path) -> None:
    """`--failed` shows each failed or errored turn in full, its conversation's other turns on one line each,
    and leaves out conversations with neither."""
    code, output = show(db, "--failed")
    assert code == 0, output
    lines = output.splitlines()
    assert [line for line in lines if line.startswith("== ")] == [
        "== realtime/a  (thread a)",
        "== realtime/b  (thread b)",
    ]
    assert 'turn 1 [passed]  user: hello  answer: You said: "hello"' in output  # context, one line
    assert "turn 2 [failed] realtime" in output and '✗ equals expected "never said"' in output
    assert "turn 1 [error] realtime" in output and "server_error" in output
    assert "turn 2 [skipped]" in lines and "vars: question='after the boom'" not in output
    assert "shown: 2 of 5 turns (failed or error), in 2 conversations" in output
    assert "passed 2  failed 1  error 1  skipped 1" in output  # the run's counts stay whole


def test_show_status_takes_repeated_and_comma_separated_statuses(db: Path) -> None:
    """`--status` is repeatable and takes comma lists; it combines with `--thread`; an unknown status is a
    usage error naming the known ones."""
    code, output = show(db, "--status", "skipped", "--status", "passed,error", "--thread", "b")
    assert code == 0, output
    assert "turn 1 [error] realtime" in output and "turn 2 [skipped] realtime" in output
    assert "shown: 2 of 2 turns (skipped or passed or error), in 1 conversation" in output
    code, output = show(db, "--status", "passed")
    assert "== realtime/c  (thread c)" in output and "shown: 2 of 5 turns (passed)" in output
    code, output = show(db, "--status", "failed,exploded")
    assert code == 2 and "exploded: a turn's status is one of passed, failed, error, skipped, pending" in output


def test_csv_carries_the_description_the_failure_reason_and_the_vars(db: Path, tmp_path: Path) -> None:
    """The CSV's last three columns: the test's description, why the turn did not pass, its vars as JSON."""
    target = tmp_path / "run.csv"
    result = CliRunner().invoke(main, ["export", "latest", "--db", str(db), "-o", str(target)])
    assert result.exit_code == 0, result.output
    rows = {row["node"]: row for row in csv.DictReader(target.read_text(encoding="utf-8").splitlines())}
    assert list(next(iter(rows.values())))[-3:] == ["description", "failure_reason", "vars"]
    failed, errored, skipped, passed = (rows[f"realtime/{node}"] for node in ("a/2", "b/1", "b/2", "a/1"))
    assert failed["description"] == "asks again"
    assert failed["failure_reason"].startswith('equals: expected "never said", got "You said:')
    assert json.loads(failed["vars"]) == {"question": "and then", "topic": "travel"}
    assert errored["failure_reason"].startswith("server_error: ")
    assert skipped["failure_reason"].startswith("skipped: turn 1 failed: server_error")
    assert (passed["description"], passed["failure_reason"], json.loads(passed["vars"])) == (
        "greets",
        "",
        {"question": "hello"},
    )


def test_the_summary_names_the_store_in_its_show_command(db: Path) -> None:
    """Each failure is listed with why and what was said; the command that lists them all names the run and,
    when it is not the default, the store."""
    with RunStore(db, read_only=True) as store:
        run = store.list_runs(1)[0]
        turns = store.turns(run.run_id)
    plan = SimpleNamespace(counts=SimpleNamespace(turns=len(turns)))  # all the summary reads of a plan
    result = RunResult(run=run, turns=turns, plan=plan, duration_s=1.0)  # type: ignore[arg-type]
    out = io.StringIO()
    print_summary(result, Console(file=out, width=80, color_system=None), max_failures=1, db_path=db)
    lines = out.getvalue().splitlines()
    assert "FAILED realtime/a/2" in lines and "ERROR  realtime/b/1" not in lines
    assert any(line.startswith('  said You said: "and then"') for line in lines)
    assert lines[-2:] == [
        "... and 1 more. All 2, with their conversations:",
        f"  rtflow show {run.run_id} --failed --db {db}",
    ]


def _bar_drawn(turns: list[TurnRecord]) -> str:
    """What the progress bar draws for these turns, each reported when answered (pending), then graded."""
    out = io.StringIO()
    with RunProgress(len(turns), lambda: 0, stream=out) as bar:
        for turn in turns:
            bar.turn(turn.model_copy(update={"status": "pending"}))
            bar.turn(turn)
    return out.getvalue()


def test_the_bar_counts_each_turn_by_its_latest_verdict(db: Path) -> None:
    """A turn is reported when answered (pending), then when graded: the bar counts it once, as graded."""
    with RunStore(db, read_only=True) as store:
        turns = store.turns(store.list_runs(1)[0].run_id)
    drawn = _bar_drawn(turns)
    assert "5/5" in drawn
    assert "passed 2  failed 1  error 1  skipped 1" in drawn


def test_on_ray_the_bar_and_the_summary_count_each_workers_turns(db: Path) -> None:
    """Records that name their Ray worker: the bar shows turns per worker under the verdicts (each turn counted
    once, though reported twice), and so does the end-of-run summary."""
    with RunStore(db, read_only=True) as store:
        run = store.list_runs(1)[0]
        turns = [
            turn.model_copy(update={"worker": "worker-10" if index % 2 else "worker-2"})
            for index, turn in enumerate(store.turns(run.run_id))
        ]
    assert "worker-2 3  worker-10 2" in _bar_drawn(turns)
    plan = SimpleNamespace(counts=SimpleNamespace(turns=len(turns)))  # all the summary reads of a plan
    result = RunResult(run=run, turns=turns, plan=plan, duration_s=1.0)  # type: ignore[arg-type]
    printed = io.StringIO()
    print_summary(result, Console(file=printed, width=120, color_system=None))
    assert "turns per Ray worker: worker-2 3, worker-10 2" in printed.getvalue()


def test_the_statuses_show_accepts_are_the_summarys() -> None:
    """`rtflow show --status` lists its statuses without importing the summary (start-up); they must agree."""
    from rtflow.cli.results_commands import TURN_STATUSES
    from rtflow.results.summary import STATUS_ORDER

    assert TURN_STATUSES == STATUS_ORDER


def test_an_assertion_that_could_not_be_judged_gives_its_reason_once() -> None:
    """`error_result` makes the error the reason: the failure line says it once. An error apart from the reason
    (a check that said something before it failed) is still shown in brackets."""
    from rtflow.flow.spec import AssertionSpec
    from rtflow.results.assertions.base import error_result
    from rtflow.results.verdicts import assertion_reason

    spec = AssertionSpec(type="latency", value={"metric": "yield_done", "max_ms": 1000})
    unjudged = error_result(spec, "the turn has no yield_done measurement")
    assert assertion_reason(unjudged) == "the turn has no yield_done measurement"
    apart = unjudged.model_copy(update={"reason": "javascript threw", "error": "TypeError: x is undefined"})
    assert assertion_reason(apart) == "javascript threw (TypeError: x is undefined)"


def test_show_failed_marks_the_turns_a_met_pass_rate_accepts(tmp_path: Path) -> None:
    """A repeated test that met its `pass_rate` passes the run; `--failed` still shows its failed copies (they are
    what makes it flaky), marked as accepted and counted apart, so the listing agrees with the run's verdict."""
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }}"],
        "execution": {"retries": 0, "repeat": 10},
        "tests": [
            {"vars": {"q": "flaky question"}, "assert": [{"type": "icontains", "value": "flaky"}], "pass_rate": 0.5},
            {"vars": {"q": "steady question"}, "assert": [{"type": "icontains", "value": "absent"}]},
        ],
    }
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(document))
    store = tmp_path / "rtflow.db"
    fault = "server_error@chat~0.3;match=flaky"
    args = ["run", str(tmp_path / "flow.yaml"), "--sim", "--db", str(store), "--sim-fault", fault, "--seed", "11"]
    assert CliRunner().invoke(main, args).exit_code == 1  # the steady test fails every copy
    code, output = show(store, "--failed")
    assert code == 0, output
    flaky_errors = [line for line in output.splitlines() if line.startswith("turn 1 [error]")]
    assert flaky_errors and all("(accepted: pass_rate met across the repeats)" in line for line in flaky_errors)
    steady_failures = [line for line in output.splitlines() if line.startswith("turn 1 [failed]")]
    assert len(steady_failures) == 10 and not any("accepted" in line for line in steady_failures)
    shown = 10 + len(flaky_errors)
    assert (
        f"shown: {shown} of 20 turns (failed or error), in {shown} conversations; {len(flaky_errors)} of them"
        " accepted: their test met its pass_rate across the repeats" in output
    )


def test_a_skipped_copy_is_not_accepted_by_a_met_pass_rate(tmp_path: Path) -> None:
    """Only a failed or errored copy is accepted when its test met its `pass_rate`: a skipped copy was never
    judged, so `show` must not mark it "accepted" (the run's verdict, `failures()` and JUnit already counted only
    failed and errored copies)."""
    from rtflow.results.summary import RunSummary

    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }}"],
        "execution": {"retries": 0, "repeat": 4},
        "tests": [
            {"vars": {"q": "flaky question"}, "assert": [{"type": "icontains", "value": "flaky"}], "pass_rate": 0.5}
        ],
    }
    (tmp_path / "flow.yaml").write_text(yaml.safe_dump(document))
    store_path = tmp_path / "rtflow.db"
    args = [
        "run",
        str(tmp_path / "flow.yaml"),
        "--sim",
        "--db",
        str(store_path),
        "--sim-fault",
        "server_error@chatx1;match=flaky",
    ]
    assert CliRunner().invoke(main, args).exit_code == 0  # 3 of 4 copies pass: the pass_rate is met
    with RunStore(store_path, read_only=True) as store:
        run = store.list_runs(1)[0]
        turns = store.turns(run.run_id)
    errored = [turn for turn in turns if turn.status == "error"]
    passed = [turn for turn in turns if turn.status == "passed"]
    assert len(errored) == 1 and len(passed) == 3
    skipped = passed[0].model_copy(update={"status": "skipped"})
    turns = [skipped if turn.node_id == skipped.node_id else turn for turn in turns]
    accepted = RunSummary.of(run, turns).accepted_by_repeats(turns)
    assert accepted == {errored[0].node_id}
