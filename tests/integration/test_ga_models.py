"""The current GA model line on the simulator: every model answers and calls tools; the newer ones with
reasoning speak `commentary` first, which rtflow keeps apart from the `final_answer` that is the turn's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow

FLOWS = Path(__file__).resolve().parents[2] / "flows"
MODELS = ["gpt-realtime", "gpt-realtime-1.5", "gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"]
REASONING = {"gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"}


def _flow(folder: Path, model: str) -> Path:
    config = {
        "parallel_tool_calls": True,
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
        "function_handlers": {"get_weather": f"file://{FLOWS / 'tools.py'}:get_weather"},
    }
    if model in REASONING:
        config["reasoning"] = {"effort": "low"}
    document = {
        "providers": [{"id": f"openai:realtime:{model}", "label": "m", "config": config}],
        "prompts": ["{{ q }}"],
        "tests": [
            {"vars": {"q": "Tell me a fact"}, "assert": [{"type": "icontains", "value": "tell me a fact"}]},
            {
                "vars": {"q": "What is the weather in Oslo?"},
                "assert": [{"type": "tool-called", "value": "get_weather"}],
            },
        ],
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize("model", MODELS)
def test_each_ga_model_answers_and_calls_tools_with_its_phases_apart(tmp_path: Path, model: str) -> None:
    result = rtflow.run(_flow(tmp_path, model), sim=True, store=False)
    assert all(turn.status == "passed" for turn in result.turns), [(t.error, t.assertions) for t in result.turns]
    fact = result.turns[0].output
    assert "Let me think" not in fact.text  # the working notes are not the answer
    assert fact.commentary == ("Let me think about that." if model in REASONING else None)


def _two_tool_flow(folder: Path, model: str, parallel: bool) -> Path:
    (folder / "tools.py").write_text(
        "def get_weather(args):\n    return {'sky': 'clear'}\n\n\ndef get_time(args):\n    return {'time': '09:30'}\n"
    )
    tool = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
    config: dict[str, Any] = {
        "parallel_tool_calls": parallel,
        "tools": [{"type": "function", "name": name, "parameters": tool} for name in ("get_weather", "get_time")],
        "function_handlers": {name: f"file://tools.py:{name}" for name in ("get_weather", "get_time")},
    }
    if model in REASONING:
        config["reasoning"] = {"effort": "low"}
    document = {
        "providers": [{"id": f"openai:realtime:{model}", "label": "m", "config": config}],
        "prompts": ["{{ q }}"],
        "tests": [{"vars": {"q": "What are the weather and the time in Oslo?"}}],
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls_come_in_one_round_on_the_reasoning_models(
    tmp_path: Path, model: str, parallel: bool
) -> None:
    """A line that names two tools: a reasoning model with `parallel_tool_calls` calls both in one response (one
    tool round, both outputs sent back together); an earlier model, or `parallel_tool_calls: false`, calls one."""
    result = rtflow.run(_two_tool_flow(tmp_path, model, parallel), sim=True, store=False)
    (turn,) = result.turns
    assert turn.status == "passed", turn.error
    both = parallel and model in REASONING
    assert [call.name for call in turn.output.tool_calls] == (["get_weather", "get_time"] if both else ["get_weather"])
    assert len(turn.output.metrics.tool_rounds_ms) == 1
    if both:
        assert (
            turn.output.text == 'Tool get_weather returned: {"sky": "clear"} Tool get_time returned: {"time": "09:30"}'
        )
