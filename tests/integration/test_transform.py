"""promptfoo's test option `transform`: assertions judge the transformed output; the record keeps what was said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import rtflow


def _run(folder: Path, transform: str, asserts: list[dict[str, Any]]) -> Any:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ question }}"],
        "tests": [{"vars": {"question": "Hello There"}, "options": {"transform": transform}, "assert": asserts}],
        "execution": {"timeout": "5s", "retries": 0},
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    (turn,) = rtflow.run(flow, sim=True, store=False).turns
    return turn


def test_a_javascript_transform(tmp_path: Path) -> None:
    turn = _run(tmp_path, "output.toUpperCase()", [{"type": "contains", "value": "HELLO THERE"}])
    assert turn.status == "passed", turn.assertions
    assert "Hello There" in turn.output.text  # the record keeps what the model said


def test_a_python_transform(tmp_path: Path) -> None:
    (tmp_path / "shout.py").write_text(
        "def shout(output, context):\n    return output.upper() + context['vars']['question']\n"
    )
    turn = _run(tmp_path, "file://shout.py:shout", [{"type": "contains", "value": "NONE)Hello There"}])
    assert turn.status == "passed", turn.assertions


def test_a_failing_transform_fails_the_turn_with_its_reason(tmp_path: Path) -> None:
    turn = _run(tmp_path, "output.nosuch()", [{"type": "contains", "value": "x"}])
    assert turn.status == "failed"
    (result,) = turn.assertions
    assert result.type == "transform" and "transform failed" in result.reason and "nosuch" in result.reason


def _run_vars(folder: Path, transform_vars: str) -> Any:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ question }} ({{ extra }})"],
        "tests": [
            {
                "vars": {"question": "Hello There"},
                "options": {"transformVars": transform_vars},
                "assert": [{"type": "icontains", "value": "{{ extra }}"}],
            }
        ],
        "execution": {"timeout": "5s", "retries": 0},
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    (turn,) = rtflow.run(flow, sim=True, store=False).turns
    return turn


def test_transform_vars_in_javascript_feeds_the_prompt_and_the_assertions(tmp_path: Path) -> None:
    turn = _run_vars(tmp_path, "return { extra: vars.question.length + ' letters' };")
    assert turn.status == "passed", (turn.error, turn.assertions)
    assert turn.vars["extra"] == "11 letters" and "(11 letters)" in turn.output.text


def test_transform_vars_in_python(tmp_path: Path) -> None:
    (tmp_path / "more.py").write_text("def more(vars, context):\n    return {'extra': vars['question'].lower()}\n")
    turn = _run_vars(tmp_path, "file://more.py:more")
    assert turn.status == "passed" and turn.vars["extra"] == "hello there"


def test_a_failing_transform_vars_is_the_turns_prompt_error(tmp_path: Path) -> None:
    turn = _run_vars(tmp_path, "return 42;")
    assert turn.status == "error" and turn.error.kind == "prompt"
    assert "transformVars returned int" in turn.error.message
