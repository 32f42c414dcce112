"""The shared tool-round loop, driven directly by a scripted fake of the provider's wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtflow.errors import ToolError
from rtflow.messages import ToolCall, Usage
from rtflow.providers.tool_rounds import run_tool_rounds
from rtflow.providers.tools import PendingCall, ToolRunner


@dataclass
class _Reply:
    text: str = ""
    calls: list[PendingCall] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=1, output_tokens=2, total_tokens=3))


class _ScriptedWire:
    """Hands out scripted replies and keeps what the loop sent back after each one."""

    def __init__(self, *replies: _Reply) -> None:
        self._replies = list(replies)
        self.sent: list[tuple[_Reply, list[ToolCall]]] = []

    async def first_reply(self) -> _Reply:
        return self._replies.pop(0)

    async def next_reply(self, reply: _Reply, outcomes: list[ToolCall]) -> _Reply:
        self.sent.append((reply, outcomes))
        return self._replies.pop(0)


def _runner(tools_dir: Path) -> ToolRunner:
    handlers = {name: f"file://tools.py:{name}" for name in ("get_weather", "explode", "loop_forever")}
    return ToolRunner(handlers, None, tools_dir, timeout=5.0)


@pytest.mark.anyio
async def test_calls_run_then_the_reply_without_calls_ends_the_turn(tools_dir: Path) -> None:
    """A reply's calls run, their outcomes go back with that reply, and the first reply without calls ends the loop."""
    asking = _Reply("Let me check.", [("c1", "get_weather", '{"city": "Kyoto"}'), ("c2", "loop_forever", "")])
    wire = _ScriptedWire(asking, _Reply("Sunny in Kyoto."))

    rounds = await run_tool_rounds(
        wire.first_reply, wire.next_reply, _runner(tools_dir), max_rounds=3, provider_label="fake"
    )

    assert rounds.text == "Let me check.\nSunny in Kyoto."
    assert [call.call_id for call in rounds.tool_calls] == ["c1", "c2"]
    assert json.loads(rounds.tool_calls[0].output or "") == {"city": "Kyoto", "temp_c": 21}
    assert rounds.tool_calls[1].output == "again"
    assert wire.sent == [(asking, rounds.tool_calls)]
    assert rounds.usage == Usage(input_tokens=2, output_tokens=4, total_tokens=6)
    assert len(rounds.round_ms) == 1 and rounds.round_ms[0] >= 0


@pytest.mark.anyio
async def test_a_reply_past_the_cap_raises_before_its_calls_run(tools_dir: Path) -> None:
    """A model still calling tools after max_rounds rounds fails with ToolError; that last reply's calls never run."""
    wire = _ScriptedWire(*(_Reply(calls=[(f"c{index}", "loop_forever", "")]) for index in range(3)))

    with pytest.raises(ToolError) as raised:
        await run_tool_rounds(
            wire.first_reply, wire.next_reply, _runner(tools_dir), max_rounds=2, provider_label="fake"
        )

    assert raised.value.message == "the model kept calling tools after 2 rounds (max_tool_iterations)"
    assert raised.value.provider == "fake"
    assert [outcomes[0].call_id for _, outcomes in wire.sent] == ["c0", "c1"]


@pytest.mark.anyio
async def test_a_cap_of_zero_rejects_the_first_call(tools_dir: Path) -> None:
    """With max_rounds 0 a first reply that calls a tool fails at once, and no handler runs."""
    wire = _ScriptedWire(_Reply(calls=[("c0", "loop_forever", "")]))

    with pytest.raises(ToolError, match="after 0 rounds"):
        await run_tool_rounds(
            wire.first_reply, wire.next_reply, _runner(tools_dir), max_rounds=0, provider_label="fake"
        )

    assert wire.sent == []


@pytest.mark.anyio
async def test_a_failing_handler_is_recorded_and_the_turn_goes_on(tools_dir: Path) -> None:
    """A handler's exception becomes its ToolCall's error (with traceback); the model gets a short error output."""
    wire = _ScriptedWire(_Reply(calls=[("c1", "explode", "{}")]), _Reply("The service is down."))

    rounds = await run_tool_rounds(
        wire.first_reply, wire.next_reply, _runner(tools_dir), max_rounds=1, provider_label="fake"
    )

    [failed] = rounds.tool_calls
    assert failed.error is not None and "Traceback" in failed.error
    assert "ValueError: the weather service is down" in failed.error
    assert json.loads(failed.output or "") == {
        "error": "tool 'explode' handler tools.py:explode raised ValueError: the weather service is down"
    }
    assert wire.sent[0][1] == [failed] and rounds.text == "The service is down."
