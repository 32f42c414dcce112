"""promptfoo's `openai:realtime` keys do what promptfoo does with them, and a fallback keeps the instructions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

import rtflow
from rtflow.sim import SimConfig
from rtflow.sim.config import parse_fault
from rtflow.sim.model import fingerprint

INSTRUCTIONS = "You are a terse travel agent. Answer in one line."


def _flow(folder: Path, config: dict[str, Any], questions: list[str], **extra: Any) -> Path:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime", "config": config, **extra}],
        "prompts": ["{{ question }}"],
        "tests": [{"vars": {"question": q}, "metadata": {"conversationId": "trip"}} for q in questions],
        "execution": {"retries": 0, "backoff_base": "0ms", "backoff_max": "0ms"},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _client_events(log: Path, event_type: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in events if e.get("dir") == "in" and e.get("type") == event_type]


def test_maintain_context_false_answers_each_turn_alone_on_a_fresh_session(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    flow = _flow(tmp_path, {"maintainContext": False}, ["first", "second", "third"])
    result = rtflow.run(flow, sim=SimConfig(log_path=log), store=False)
    assert result.passed and len(result.turns) == 3
    for turn in result.turns:
        assert turn.output is not None and "(user messages: 1," in turn.output.text, turn.output.text
        assert len(turn.request_messages) == 1
    assert len(_client_events(log, "session.update")) == 3  # one session per turn


def test_maintain_context_true_is_the_default_one_session_with_history(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    result = rtflow.run(_flow(tmp_path, {}, ["first", "second"]), sim=SimConfig(log_path=log), store=False)
    assert [t.output.text.count("user messages: 2") for t in result.turns if t.output] == [0, 1]
    assert len(_client_events(log, "session.update")) == 1


def test_promptfoos_session_keys_reach_the_session(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    config = {"toolCallTimeout": 1500, "parallel_tool_calls": False, "reasoning": {"effort": "low"}}
    flow = _flow(tmp_path, config, ["hello"])
    spec = rtflow.load(flow)
    provider_config = spec.providers[0].to_info(tmp_path).config
    assert provider_config  # validated by the provider below
    from rtflow.providers.openai_realtime import RealtimeProvider

    provider = RealtimeProvider(spec.providers[0].to_info(tmp_path))
    assert provider.config.tool_timeout == 1.5  # promptfoo's toolCallTimeout is in milliseconds
    assert rtflow.run(flow, sim=SimConfig(log_path=log), store=False).passed
    (update,) = _client_events(log, "session.update")
    session = update["payload"]["session"]
    assert session["parallel_tool_calls"] is False and session["reasoning"] == {"effort": "low"}


def test_a_chat_fallback_keeps_the_realtime_instructions(tmp_path: Path) -> None:
    """Realtime fails; Chat answers with the Realtime provider's instructions as its system message."""
    flow = _flow(
        tmp_path,
        {"instructions": INSTRUCTIONS},
        ["Where to in May?"],
        fallback={"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
    )
    config = SimConfig(faults=[parse_fault("status:500@realtime")])
    (turn,) = rtflow.run(flow, sim=config, store=False).turns
    assert turn.is_fallback and turn.output is not None
    assert turn.request_messages[0].role == "system" and turn.request_messages[0].content == INSTRUCTIONS
    assert f"instructions: {fingerprint(INSTRUCTIONS, [])})" in turn.output.text, turn.output.text


def test_a_fallback_with_its_own_system_message_is_left_alone(tmp_path: Path) -> None:
    """A prompt that already starts with a system message is sent as written: no second system message."""
    flow = _flow(
        tmp_path,
        {"instructions": INSTRUCTIONS},
        ["Where to in May?"],
        fallback={"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
    )
    document = yaml.safe_load(flow.read_text())
    document["prompts"] = [
        json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{ question }}"}])
    ]
    flow.write_text(yaml.safe_dump(document))
    config = SimConfig(faults=[parse_fault("status:500@realtime")])
    (turn,) = rtflow.run(flow, sim=config, store=False).turns
    assert turn.is_fallback
    assert [m.role for m in turn.request_messages] == ["system", "user"]
    assert turn.request_messages[0].content == "Be brief."
