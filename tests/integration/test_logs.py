"""Structured logs: stable event names bound to their node, and no secret ever written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
import yaml

import rtflow
from rtflow.log import configure_logging
from rtflow.sim import SimConfig, SimServer

SECRET = "sk-proj-THIS-IS-A-SECRET-KEY-1234567890"


def flow_for(folder: Path, base_url: str, key: str) -> Path:
    document = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "label": "realtime",
                "config": {"api_base_url": base_url, "api_key": key},
                "fallback": {
                    "id": "openai:chat:gpt-4.1-mini",
                    "label": "chat",
                    "config": {"api_base_url": base_url, "api_key": key},
                },
            }
        ],
        "prompts": ["{{ question }}"],
        "threads": {"t": [{"question": "hello"}, {"question": "again"}]},
        "execution": {"retries": 1, "backoff_base": "0ms", "backoff_max": "0ms", "timeout": "5s"},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_refused_key_never_reaches_logs_records_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator refuses the key: every log line, record and error is free of it."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stream = io.StringIO()
    configure_logging(log_format="json", level="debug", stream=stream)

    async def main() -> rtflow.RunResult:
        async with SimServer(SimConfig(require_key="sk-the-only-right-key")) as sim:
            return await rtflow.arun(flow_for(tmp_path, sim.http_base_url, SECRET), db=tmp_path / "runs.db")

    result = anyio.run(main)
    assert [t.status for t in result.turns] == ["error", "skipped"]
    logged = stream.getvalue()
    assert "attempt.failed" in logged
    assert SECRET not in logged
    assert SECRET not in result.turns[0].model_dump_json()
    assert SECRET not in (tmp_path / "runs.db").read_bytes().decode("latin-1")


def test_events_have_stable_names_and_are_bound_to_their_node(tmp_path: Path) -> None:
    """A run logs run.started, node.started, node.finished and run.finished, each node event bound to its node."""
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", stream=stream)

    async def main() -> rtflow.RunResult:
        async with SimServer(SimConfig()) as sim:
            return await rtflow.arun(flow_for(tmp_path, sim.http_base_url, "sk-any-key-works"), store=False)

    result = anyio.run(main)
    assert result.passed
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    names = [event["event"] for event in events]
    for expected in ("run.started", "node.started", "node.finished", "run.finished"):
        assert expected in names
    for event in events:
        if event["event"].startswith("node."):
            assert event["run"] == result.run_id
            assert event["conversation"] == "realtime/t"
            assert event["node"] in ("realtime/t/1", "realtime/t/2")
            assert event["provider"] == "realtime"
