"""The flow's `outputs` (promptfoo's `outputPath`) are written at the end of a run, and checked before it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rtflow

FLOW = {
    "providers": ["openai:chat:gpt-4.1-mini"],
    "prompts": ["{{ question }}"],
    "tests": [{"vars": {"question": "hello"}, "assert": [{"type": "icontains", "value": "hello"}]}],
}


def _flow(folder: Path, **extra: object) -> Path:
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump({**FLOW, **extra}))
    return path


def test_output_path_files_are_written_beside_the_flow(tmp_path: Path) -> None:
    """`outputPath: [results/out.json, out.csv]`: both written, relative to the flow's folder, named on the result."""
    flows = tmp_path / "flows"
    flows.mkdir()
    flow = _flow(flows, outputPath=["results/out.json", "out.csv"])
    result = rtflow.run(flow, sim=True, db=tmp_path / "runs.db")
    assert result.passed
    assert result.outputs_written == [flows / "results" / "out.json", flows / "out.csv"]
    exported = json.loads((flows / "results" / "out.json").read_text())
    assert exported["run"]["run_id"] == result.run_id and len(exported["turns"]) == 1
    assert "hello" in (flows / "out.csv").read_text()


def test_an_unknown_output_format_is_a_load_error_naming_the_key(tmp_path: Path) -> None:
    flow = _flow(tmp_path, outputPath="results.txt")
    with pytest.raises(rtflow.FlowError) as refused:
        rtflow.load(flow)
    message = str(refused.value)
    line = next(n for n, text in enumerate(flow.read_text().splitlines(), 1) if text.startswith("outputPath"))
    assert f"flow.yaml:{line}:" in message, message
    assert "outputPath" in message and "results.txt" in message and ".jsonl" in message


def test_an_unwritable_output_is_refused_before_the_first_request(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    flow = _flow(tmp_path, outputs="blocker/out.json")
    log = tmp_path / "sim.jsonl"
    env = {**os.environ}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtflow",
            "run",
            str(flow),
            "--sim",
            "--sim-log",
            str(log),
            "--db",
            str(tmp_path / "db"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "blocker" in done.stderr and "Traceback" not in done.stderr
    assert not log.exists() or "chat.completions" not in log.read_text()


def test_the_cli_names_every_file_it_wrote(tmp_path: Path) -> None:
    flow = _flow(tmp_path, outputs=["a.json"])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtflow",
            "run",
            str(flow),
            "--sim",
            "-o",
            str(tmp_path / "b.csv"),
            "--db",
            str(tmp_path / "db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"results written to {tmp_path / 'b.csv'}" in done.stdout
    assert f"results written to {tmp_path / 'a.json'}" in done.stdout
