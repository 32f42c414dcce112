"""A GPT-Live caller script against the simulator, as a user runs it: three spoken lines on one continuous audio
stream, one client delegation answered by the flow's handler, and one barge-in; each turn's answer, the
delegation's call and output, the yield latency, and each turn's per-minute cost (the price table's rate for
gpt-live-1) are recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from audio_support import tone_wav

import rtflow
from rtflow.providers.pricing import PRICES_AS_OF
from rtflow.sim import SimConfig


def test_three_lines_a_delegation_and_a_barge_in(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def lookup(arguments):\n    return 'order A-1234 ships tomorrow'\n")
    lines = [tone_wav(tmp_path / f"line{n}.wav", 0.6 + 0.2 * n) for n in range(1, 4)]
    document = {
        "providers": [
            {
                "id": "openai:live:gpt-live-1",
                "label": "live",
                "config": {
                    "instructions": "You are a helpful agent.",
                    "function_handlers": {"lookup": "file://tools.py:lookup"},
                    "turn_silence_ms": 600,
                },
            }
        ],
        "prompts": ["{{ q }}"],
        "threads": {
            "call": [
                {"q": "first line", "audio": str(lines[0])},
                {"q": "second line", "audio": str(lines[1])},
                {"interrupt": {"after_ms": 300}},
                {"q": "third line", "audio": str(lines[2])},
            ]
        },
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    config = SimConfig(live_yield_ms=120)
    result = rtflow.run(flow, sim=config, store=False)
    first, second, third = sorted(result.turns, key=lambda turn: turn.turn_index)
    assert [turn.status for turn in (first, second, third)] == ["passed"] * 3, [t.error for t in result.turns]
    assert "audio of 0.80 seconds" in first.output.input_transcript
    assert first.output.text.startswith('You said: "audio of 0.80')
    # The second line is delegated to the client: the flow's handler answers, and the agent says what it said.
    (call,) = second.output.tool_calls
    assert call.output is not None and "ships tomorrow" in call.output
    assert "The tool said" in second.output.text
    # The third line barges in on the second answer: the agent yields about 120 ms after the caller starts.
    assert second.output.interruption is not None
    assert second.output.metrics.yield_ms is not None and 60 <= second.output.metrics.yield_ms <= 400
    assert "audio of 1.20 seconds" in third.output.text
    # Each turn costs the session seconds billed during it, at the table's $0.05 a minute for gpt-live-1.
    billed = 0.0
    for turn in (first, second, third):
        detail = [mark.detail for mark in turn.output.events if mark.type == "session.usage.updated"][-1]
        assert detail is not None and f"at $0.05/min (price table of {PRICES_AS_OF})" in detail
        found = re.match(r"([\d.]+) s billed so far; this turn ([\d.]+) s", detail)
        assert found is not None, detail
        this_turn = float(found[2])
        assert this_turn > 0 and float(found[1]) == pytest.approx(billed + this_turn)
        assert turn.output.cost == pytest.approx(this_turn * 0.05 / 60)
        billed += this_turn
    assert result.summary.cost == pytest.approx(billed * 0.05 / 60)
