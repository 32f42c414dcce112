"""`rtflow run`: outputs, summaries, exit codes and clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rtflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write_flow(folder: Path, expect: str = "you said") -> Path:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
        "prompts": ["{{ question }}"],
        "threads": {
            "a": [{"question": "first", "assert": [{"type": "icontains", "value": expect}]}, {"question": "second"}],
            "b": [{"question": "third"}],
        },
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".html"])
def test_results_are_written_in_the_format_of_the_suffix(tmp_path: Path, suffix: str) -> None:
    """`-o` writes every turn as JSON, JSONL (streamed), CSV or a self-contained HTML report."""
    out = tmp_path / f"results{suffix}"
    code, stdout, stderr = invoke("run", write_flow(tmp_path), "--sim", "--db", tmp_path / "r.db", "-o", out)
    assert code == 0, stdout + stderr
    assert "simulated run" in stderr
    text = out.read_text()
    if suffix == ".json":
        assert len(json.loads(text)["turns"]) == 3
    elif suffix == ".jsonl":
        assert len([json.loads(line) for line in text.splitlines()]) == 3
    elif suffix == ".csv":
        assert len(list(csv.DictReader(text.splitlines()))) == 3
    else:
        assert text.lstrip().lower().startswith("<!doctype html") and "You said" in text


def test_summary_shows_each_provider_and_the_first_failures(tmp_path: Path) -> None:
    """A failing assertion gives exit 1 and names the turn and the reason under the summary table."""
    code, stdout, _ = invoke("run", write_flow(tmp_path, expect="kyoto"), "--sim", "--db", tmp_path / "r.db")
    assert code == 1
    assert "realtime" in stdout and "passed" in stdout
    assert "FAILED realtime/a/1" in stdout and "kyoto" in stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--var", "novalue"], "--var 'novalue': expected NAME=VALUE"),
        (["--sim-fault", "status:500"], "only apply with --sim"),
        (["--sim", "--sim-fault", "explode"], "unknown fault kind 'explode'"),
        (["--sim", "--resume", "no-such-run"], "no-such-run"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], expected: str) -> None:
    """Usage mistakes get one line naming the option or value at fault, exit 2, no traceback."""
    code, stdout, stderr = invoke("run", write_flow(tmp_path), "--db", tmp_path / "r.db", *args)
    assert code == 2, stdout + stderr
    assert expected in stderr
    assert "Traceback" not in stdout + stderr


def test_a_bad_flow_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    """A misspelt key in a real subprocess run: exit 2, file:line and a suggestion, no traceback."""
    flow = tmp_path / "bad.yaml"
    flow.write_text(
        "providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ q }}']\ntests:\n  - vars: {q: hi}\n    asert: []\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "run", str(flow), "--sim"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"{flow}:5" in done.stderr and "assert" in done.stderr
    assert "Traceback" not in done.stderr


def test_main_job_runs_from_the_readme(tmp_path: Path) -> None:
    """The README's first command's run passes offline and says it is simulated."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtflow.cli",
            "run",
            str(ROOT / "flows" / "conversation.yaml"),
            "--sim",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "simulated" in done.stderr
    assert "6 passed" in done.stdout
    assert (tmp_path / ".rtflow" / "rtflow.db").is_file()


def test_without_a_key_the_real_run_stops_before_starting(tmp_path: Path) -> None:
    """No OPENAI_API_KEY and no --sim: one message naming the variable and --sim, exit 2, no run recorded."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "run", str(write_flow(tmp_path)), "--db", str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr and "--sim" in done.stderr
    assert "Traceback" not in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "runs", "--db", str(tmp_path / "r.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "No runs in" in listed.stdout


def test_filter_and_repeat_choose_what_runs(tmp_path: Path) -> None:
    """`--filter-thread a --repeat 2` runs thread a's two turns twice, as separate conversations."""
    out = tmp_path / "turns.json"
    code, stdout, stderr = invoke(
        "run",
        write_flow(tmp_path),
        "--sim",
        "--db",
        tmp_path / "r.db",
        "--filter-thread",
        "a",
        "--repeat",
        "2",
        "-o",
        out,
    )
    assert code == 0, stdout + stderr
    turns = json.loads(out.read_text())["turns"]
    assert sorted(t["node_id"] for t in turns) == ["realtime/a#2/1", "realtime/a#2/2", "realtime/a/1", "realtime/a/2"]
    assert all(t["output"]["text"].count("user messages: ") == 1 for t in turns)
    assert {t["output"]["text"].split("(user messages: ")[1][0] for t in turns if t["turn_index"] == 1} == {"2"}
