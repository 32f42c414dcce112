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


def _run_layers(folder: Path, provider_transform: str | None, assertion: dict[str, Any]) -> Any:
    provider: dict[str, Any] = {"id": "openai:chat:gpt-4.1-mini"}
    if provider_transform is not None:
        provider["transform"] = provider_transform
    document = {
        "providers": [provider],
        "prompts": ["{{ question }}"],
        "tests": [
            {
                "vars": {"question": "Hello There"},
                "options": {"transform": "output + ' [test]'"},
                "assert": [assertion, {"type": "contains", "value": "[test]"}],
            }
        ],
        "execution": {"timeout": "5s", "retries": 0},
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    (turn,) = rtflow.run(flow, sim=True, store=False).turns
    return turn


def test_provider_then_test_then_assertion_transforms_apply_in_promptfoos_order(tmp_path: Path) -> None:
    """The provider's transform runs first, the test's on its result, an assertion's own on that, for it alone."""
    assertion = {"type": "equals", "value": "[PROVIDER] [TEST]!", "transform": "output.slice(-20).toUpperCase() + '!'"}
    turn = _run_layers(tmp_path, "'[provider]'", assertion)
    assert turn.status == "passed", turn.assertions
    own, plain = turn.assertions
    assert own.passed and plain.passed  # the second assertion saw the output without the first one's transform
    assert "Hello There" in turn.output.text  # the stored output is what the model said


def test_a_failing_assertion_transform_fails_that_assertion_alone(tmp_path: Path) -> None:
    turn = _run_layers(tmp_path, None, {"type": "contains", "value": "x", "transform": "output.nosuch()"})
    own, plain = turn.assertions
    assert not own.passed and "the assertion's transform failed" in own.reason and "nosuch" in own.reason
    assert plain.passed


def test_a_failing_provider_transform_names_the_provider(tmp_path: Path) -> None:
    turn = _run_layers(tmp_path, "output.nosuch()", {"type": "contains", "value": "Hello"})
    (result,) = turn.assertions
    assert result.type == "transform" and "provider openai:chat:gpt-4.1-mini's transform failed" in result.reason
