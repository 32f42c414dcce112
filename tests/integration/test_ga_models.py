"""The current GA model line on the simulator: every model answers and calls tools; the newer ones with
reasoning speak `commentary` first, which rtflow keeps apart from the `final_answer` that is the turn's output."""

from __future__ import annotations

from pathlib import Path

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
