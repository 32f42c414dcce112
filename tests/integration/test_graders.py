"""The grader of a model-graded assertion: its own `provider`, else its test's `options.provider`, else the flow's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow
from rtflow.errors import FlowLoadError
from rtflow.sim import SimConfig

RUBRIC = {"type": "llm-rubric", "value": "Paris"}


def _flow(folder: Path, tests: list[dict[str, Any]]) -> Path:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ question }}"],
        "grader": "openai:chat:gpt-4.1-nano",
        "tests": tests,
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _grading_models(log: Path) -> list[str]:
    """The model of every chat request that was a grading request (the rubric prompt), in order."""
    models = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("dir") == "in" and event.get("endpoint") == "chat":
            body = event.get("payload") or {}
            if "rubric" in json.dumps(body.get("messages", "")).lower():
                models.append(body.get("model"))
    return models


def test_an_assertion_test_and_flow_grader_each_grade_their_own(tmp_path: Path) -> None:
    tests = [
        {"vars": {"question": "Paris one"}, "assert": [{**RUBRIC, "provider": "openai:chat:gpt-4o"}]},
        {"vars": {"question": "Paris two"}, "options": {"provider": "openai:chat:gpt-4o-mini"}, "assert": [RUBRIC]},
        {"vars": {"question": "Paris three"}, "assert": [RUBRIC]},
    ]
    log = tmp_path / "sim.jsonl"
    result = rtflow.run(_flow(tmp_path, tests), sim=SimConfig(log_path=log), store=False)
    assert result.passed, [(t.node_id, t.assertions) for t in result.turns]
    assert sorted(_grading_models(log)) == ["gpt-4.1-nano", "gpt-4o", "gpt-4o-mini"]


def test_an_unsupported_test_option_is_a_warning_not_silence(tmp_path: Path) -> None:
    flow = rtflow.load(_flow(tmp_path, [{"vars": {"question": "x"}, "options": {"storeOutputAs": "x"}}]))
    assert any("test option `storeOutputAs` is not supported" in warning for warning in flow.warnings)


def test_a_grader_of_an_unknown_kind_is_a_load_error_at_its_place(tmp_path: Path) -> None:
    tests = [{"vars": {"question": "x"}, "assert": [{**RUBRIC, "provider": "openai:chatt:gpt-4o"}]}]
    with pytest.raises(FlowLoadError) as refused:
        rtflow.load(_flow(tmp_path, tests))
    message = str(refused.value)
    assert "tests.0.assert.0.provider" in message and "chatt" in message, message
