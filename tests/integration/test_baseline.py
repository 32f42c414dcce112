"""`rtflow run --baseline RUN --fail-on regression` and `rtflow diff`: a flow changed so that one test gets worse
is a significant regression (exit 1); the same flow reordered is no change (exit 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def _test(description: str, question: str, word: str) -> dict[str, Any]:
    return {"description": description, "vars": {"q": question}, "assert": [{"type": "icontains", "value": word}]}


TESTS = [
    _test("capital", "capital of France", "france"),
    _test("colour", "colour of the sky", "sky"),
    _test("sum", "two plus two", "two"),
]


def _run(folder: Path, tests: list[dict[str, Any]], *options: str) -> subprocess.CompletedProcess[str]:
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump({"providers": ["openai:chat:gpt-4.1-mini"], "prompts": ["{{ q }}"], "tests": tests}))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    command = [sys.executable, "-m", "rtflow", "run", str(flow), "--sim", "--no-progress", "--repeat", "10"]
    return subprocess.run(
        [*command, "--db", str(folder / "runs.db"), *options], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_worse_test_is_a_significant_regression_and_a_reordered_flow_is_not(tmp_path: Path) -> None:
    assert _run(tmp_path, TESTS).returncode == 0  # the baseline: everything passes, ten times
    reordered = _run(tmp_path, list(reversed(TESTS)), "--baseline", "latest", "--fail-on", "regression")
    assert reordered.returncode == 0, reordered.stdout + reordered.stderr
    assert "0 regression(s)" in reordered.stdout and "3 unchanged" in reordered.stdout

    worse = [dict(test) for test in TESTS]
    worse[1] = {**worse[1], "assert": [{"type": "icontains", "value": "clouds"}]}  # the change breaks one test
    changed = _run(tmp_path, worse, "--baseline", "latest", "--fail-on", "regression")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "1 regression(s)" in changed.stdout and "colour" in changed.stdout
    regression_line = next(line for line in changed.stdout.splitlines() if line.strip().startswith("regression"))
    assert "10/10" in regression_line and "0/10" in regression_line

    # The same comparison from the store afterwards, between the first run and the last.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    runs = subprocess.run(
        [sys.executable, "-m", "rtflow", "runs", "--db", str(tmp_path / "runs.db")],
        capture_output=True, text=True, timeout=60, env=env,
    ).stdout  # fmt: skip
    run_ids = [line.split()[0] for line in runs.splitlines() if line.strip().startswith("2")]
    diff = subprocess.run(
        [sys.executable, "-m", "rtflow", "diff", run_ids[-1], run_ids[0], "--db", str(tmp_path / "runs.db")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert diff.returncode == 1 and "1 regression(s)" in diff.stdout, diff.stdout + diff.stderr


def test_fail_on_regression_without_a_baseline_is_refused(tmp_path: Path) -> None:
    done = _run(tmp_path, TESTS, "--fail-on", "regression")
    assert done.returncode == 2 and "--fail-on regression needs --baseline RUN" in done.stderr


def test_the_html_report_of_a_run_against_a_baseline_opens_with_the_compare_view(tmp_path: Path) -> None:
    """`run --baseline ... -o report.html` and `export RUN --baseline BASE -o report.html` both write it."""
    from rtflow.results.store import RunStore

    assert _run(tmp_path, TESTS).returncode == 0
    worse = [*TESTS[:2], _test("sum", "two plus two", "seven")]
    report = tmp_path / "run.html"
    assert _run(tmp_path, worse, "--baseline", "latest", "-o", str(report)).returncode == 1
    assert '<section id="compare">' in report.read_text(encoding="utf-8")
    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        newest, oldest = (run.run_id for run in store.list_runs(None))
    export = [sys.executable, "-m", "rtflow", "export", newest, "--db", str(tmp_path / "runs.db")]
    exported = tmp_path / "export.html"
    done = subprocess.run([*export, "--baseline", "no-such-run", "-o", str(exported)], capture_output=True, text=True)
    assert done.returncode == 2 and "no-such-run" in done.stderr and not exported.exists()
    done = subprocess.run([*export, "--baseline", oldest, "-o", str(exported)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '<section id="compare">' in exported.read_text(encoding="utf-8")
    plain = tmp_path / "plain.html"
    subprocess.run([*export, "-o", str(plain)], capture_output=True, text=True, check=True)
    assert '<section id="compare">' not in plain.read_text(encoding="utf-8")


def test_a_clip_path_matches_by_its_file_name_across_folders() -> None:
    from rtflow.results.compare import test_key
    from rtflow.results.records import TurnRecord

    def turn(path: str) -> TurnRecord:
        return TurnRecord(
            run_id="r", node_id="p/t/1", conversation_id="p/t", thread_id="t", turn_index=0, provider="p",
            provider_id="openai:chat:x", prompt="q", status="passed", vars={"audio": path, "q": "hi"},
        )  # fmt: skip

    assert test_key(turn("/home/a/suite/clips/hello.wav")) == test_key(turn("/tmp/b/clips/hello.wav"))
    assert test_key(turn("/tmp/b/clips/hello.wav")) != test_key(turn("/tmp/b/clips/goodbye.wav"))


def test_latest_is_the_last_run_of_the_same_flow_and_new_tests_show_their_counts(tmp_path: Path) -> None:
    """With runs of two flows in one store, `--baseline latest` (and `diff latest`, `export --baseline latest`)
    compares with the last run of the *same* flow: another flow's run shares no test, and a regression gate
    against it would pass whatever happened. A test only one side has shows that side's counts."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir(), other.mkdir()
    db = ["--db", str(tmp_path / "runs.db")]
    never = _run(first, TESTS, *db, "--baseline", "latest")
    assert never.returncode == 2 and "no earlier run of" in never.stderr and "flow.yaml" in never.stderr

    assert _run(first, TESTS, *db).returncode == 0
    assert _run(other, [_test("elsewhere", "a question of its own", "own")], *db).returncode == 0
    worse = [dict(test) for test in TESTS]
    worse[1] = {**worse[1], "assert": [{"type": "icontains", "value": "clouds"}]}
    grown = [*worse, _test("added", "a new question", "new")]
    changed = _run(first, grown, *db, "--baseline", "latest", "--fail-on", "regression")
    assert changed.returncode == 1, changed.stdout + changed.stderr  # the same flow's run: the regression shows
    assert "1 regression(s)" in changed.stdout and "2 unchanged" in changed.stdout
    new_line = next(line for line in changed.stdout.splitlines() if line.strip().startswith("new"))
    assert "added" in new_line and "10/10" in new_line

    rtflow = [sys.executable, "-m", "rtflow"]
    diff = subprocess.run([*rtflow, "diff", "latest", *db], capture_output=True, text=True, timeout=60, env=env)
    assert diff.returncode == 1 and "1 regression(s)" in diff.stdout  # latest against the run before it
    exported = subprocess.run(
        [*rtflow, "export", "latest", "--baseline", "latest", "-o", str(tmp_path / "c.html"), *db],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    from rtflow.results.store import RunStore

    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        _grown, other_run, first_run = (run.run_id for run in store.list_runs(None))
    report = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert first_run in report and other_run not in report  # compared with the same flow's run


def test_several_outputs_are_each_written(tmp_path: Path) -> None:
    """`-o` may be given several times, as promptfoo's `--output` takes several paths: each file is written."""
    outputs = [tmp_path / name for name in ("r.html", "r.xml", "r.md", "r.jsonl", "r.csv")]
    again = tmp_path / "." / "r.md"  # the same file named twice is written once
    done = _run(tmp_path, TESTS, *[part for path in [*outputs, again] for part in ("-o", str(path))])
    assert done.returncode == 0, done.stderr
    for path in outputs:
        assert path.stat().st_size > 0 and f"results written to {path}" in done.stdout
    assert done.stdout.count("results written to") == len(outputs)
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 30  # 3 tests x 10 repeats, streamed


def test_a_resumed_run_is_compared_with_the_run_before_it_and_a_gate_with_nothing_to_judge_fails(
    tmp_path: Path,
) -> None:
    """`--resume latest --baseline latest` compares with the flow's run before the resumed one, not with itself
    (the earlier run failed a test the resumed one passes: an improvement, where itself would be no change); a
    regression gate against a run that shares no test with this one is an error, not a pass."""
    db = ["--db", str(tmp_path / "runs.db")]
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir(), other.mkdir()
    worse = [dict(test) for test in TESTS]
    worse[1] = {**worse[1], "assert": [{"type": "icontains", "value": "clouds"}]}
    assert _run(first, worse, *db).returncode == 1
    assert _run(first, TESTS, *db).returncode == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RTFLOW_"))}
    resumed = subprocess.run(
        [sys.executable, "-m", "rtflow", "run", "--resume", "latest", "--sim", "--no-progress", *db,
         "--baseline", "latest", "--fail-on", "regression"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 improvement(s)" in resumed.stdout and "2 unchanged" in resumed.stdout

    from rtflow.results.store import RunStore

    with RunStore(tmp_path / "runs.db", read_only=True) as store:
        _second, first_run = (run.run_id for run in store.list_runs(None))
    vacuous = _run(other, [_test("elsewhere", "a question of its own", "own")], *db,
                   "--baseline", first_run, "--fail-on", "regression")  # fmt: skip
    assert vacuous.returncode == 2, vacuous.stdout + vacuous.stderr
    assert f"the baseline {first_run} shares no test with this run" in vacuous.stderr
    assert "share no test: nothing was compared" in vacuous.stdout
    # `rtflow diff` is the same gate: against a run that shares no test it is an error too (it passed, exit 0)
    gate = subprocess.run(
        [sys.executable, "-m", "rtflow", "diff", first_run, "latest", *db],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert f"the baseline {first_run} shares no test with" in gate.stderr
