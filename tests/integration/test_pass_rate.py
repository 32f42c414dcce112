"""`pass_rate`: a repeated turn's verdict is whether it passed often enough, and the run's exit code follows.

A seeded simulator fault fails a known share of one test's runs; the same run is judged against requirements
it meets and ones it does not, by the rate and by the interval's lower bound; a test's own `repeat:` and
`pass_rate:` take precedence over the flow's `execution`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow
from rtflow.errors import FlowError
from rtflow.sim import SimConfig
from rtflow.sim.config import parse_fault

FAIL_PROBABILITY = 0.3


def _flow(tmp_path: Path, *, flaky_test: dict[str, Any], execution: dict[str, Any]) -> Path:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }}"],
        "execution": {"retries": 0, **execution},  # a retry would hide the fault the test injects
        "tests": [
            {"vars": {"q": "steady question"}, "assert": [{"type": "icontains", "value": "steady"}]},
            {"vars": {"q": "flaky question"}, "assert": [{"type": "icontains", "value": "flaky"}], **flaky_test},
        ],
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    return flow


def _run(flow: Path) -> rtflow.RunResult:
    fault = parse_fault(f"server_error@chat~{FAIL_PROBABILITY};match=flaky")
    return rtflow.run(flow, sim=SimConfig(faults=[fault], seed=11), store=False)


def _flaky_turn(result: rtflow.RunResult) -> Any:
    (figure,) = [f for f in result.summary.repeats if f.kind == "turn" and "test-2" in f.key]
    return figure


@pytest.mark.parametrize(
    ("pass_rate", "passes"),
    [
        (0.5, True),  # about 70% pass: the rate reaches 0.5
        (0.95, False),  # and not 0.95
        ({"min": 0.4, "confident": True}, True),  # the interval's lower bound is above 0.4 too
        ({"min": 0.65, "confident": True}, False),  # but not above 0.65, whatever the observed rate
    ],
)
def test_a_repeated_turn_is_judged_by_its_pass_rate(tmp_path: Path, pass_rate: Any, passes: bool) -> None:
    result = _run(_flow(tmp_path, flaky_test={"pass_rate": pass_rate}, execution={"repeat": 20}))
    figure = _flaky_turn(result)
    assert figure.runs == 20 and 0 < figure.passed < 20  # some runs failed: without pass_rate the run fails
    assert figure.meets is passes
    assert result.passed is passes and result.exit_code == (0 if passes else 1)
    assert result.summary.unmet_pass_rates == (0 if passes else 1)
    expected_accepted = 40 if passes else 20 + figure.passed
    assert result.summary.accepted == expected_accepted


def test_a_tests_own_repeat_and_pass_rate_override_the_flows(tmp_path: Path) -> None:
    flow = _flow(tmp_path, flaky_test={"repeat": 12, "passRate": 0.5}, execution={"repeat": 2, "pass_rate": 1.0})
    result = _run(flow)
    runs = {figure.key: figure.runs for figure in result.summary.repeats if figure.kind == "conversation"}
    assert runs == {"openai:chat:gpt-4.1-mini/test-1": 2, "openai:chat:gpt-4.1-mini/test-2": 12}
    steady = next(f for f in result.summary.repeats if f.kind == "turn" and "test-1" in f.key)
    assert steady.required is not None and steady.required.min == 1.0 and steady.meets is True
    assert _flaky_turn(result).required.min == 0.5


def test_a_pass_rate_out_of_range_names_the_key(tmp_path: Path) -> None:
    flow = _flow(tmp_path, flaky_test={"pass_rate": 1.5}, execution={})
    with pytest.raises(FlowError, match=r"pass_rate"):
        rtflow.load(flow)


def test_the_cli_summary_says_which_pass_rates_were_not_met(tmp_path: Path) -> None:
    import subprocess
    import sys

    flow = _flow(tmp_path, flaky_test={"pass_rate": 0.95}, execution={"repeat": 20})
    command = [sys.executable, "-m", "rtflow", "run", str(flow), "--sim", "--no-progress", "--db", "r.db"]
    done = subprocess.run(
        [*command, "--sim-fault", f"server_error@chat~{FAIL_PROBABILITY};match=flaky"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "1 turn(s) did not pass as often as their pass_rate asks" in done.stdout
    assert "turns' pass rates: not met" in done.stdout
    assert "cost per passing turn: $" in done.stdout


@pytest.mark.parametrize(("pass_rate", "passes"), [(0.5, True), (0.95, False)])
def test_junit_agrees_with_the_pass_rate_verdict(tmp_path: Path, pass_rate: float, passes: bool) -> None:
    """A copy that errored while its turn met its pass rate is a pass in JUnit, saying why; when the rate is not
    met, each failed copy stays an error: the file's counts agree with the exit code."""
    import junitparser

    from rtflow.results.report import write_export

    result = _run(_flow(tmp_path, flaky_test={"pass_rate": pass_rate}, execution={"repeat": 20}))
    failed_copies = 20 - _flaky_turn(result).passed
    path = write_export(result.run, list(result.turns), tmp_path / "results.xml")
    (suite,) = junitparser.JUnitXml.fromfile(str(path))
    flaky_cases = [case for case in suite if "flaky question" in case.name]
    assert len(flaky_cases) == 20 and suite.tests == 40
    accepted = [case for case in flaky_cases if "accepted: this run error" in (case.system_out or "")]
    if passes:
        assert (suite.errors, suite.failures) == (0, 0) and result.exit_code == 0
        assert len(accepted) == failed_copies and all(case.is_passed for case in accepted)
        assert f"the turn passed {20 - failed_copies} of 20 runs (>= 50%: met)" in accepted[0].system_out
    else:
        assert suite.errors == failed_copies and result.exit_code == 1
        assert not accepted and sum(not case.is_passed for case in flaky_cases) == failed_copies


@pytest.mark.parametrize(("pass_rate", "passes"), [(0.5, True), (0.95, False)])
def test_the_failures_listed_are_those_that_count_against_the_run(
    tmp_path: Path, pass_rate: float, passes: bool
) -> None:
    """`RunResult.failures`, the Markdown summary's failures and JUnit agree: a copy accepted by its turn's pass
    rate is not listed as a failure (the repeats table shows the turn as flaky); when the rate is not met, each
    failed copy is."""
    from rtflow.results.report import render_markdown
    from rtflow.results.report.markdown import FAILURES_SHOWN

    result = _run(_flow(tmp_path, flaky_test={"pass_rate": pass_rate}, execution={"repeat": 20}))
    failed_copies = 20 - _flaky_turn(result).passed
    assert 0 < failed_copies < 20
    markdown = render_markdown(result.run, list(result.turns), summary=result.summary)
    if passes:
        assert result.failures == [] and result.exit_code == 0
        assert "## Failures" not in markdown and "| flaky |" in markdown
    else:
        assert len(result.failures) == failed_copies and result.exit_code == 1
        assert all("test-2" in turn.node_id for turn in result.failures)  # the flaky test's copies, none other
        assert "## Failures" in markdown and markdown.count("(error)") == min(failed_copies, FAILURES_SHOWN)
