"""A GPT-Live caller script against the simulator, as a user runs it: three spoken lines on one continuous audio
stream, one client delegation answered by the flow's handler, and one barge-in; each turn's answer, the
delegation's call and output, and the yield latency are recorded."""

from __future__ import annotations

from pathlib import Path

import yaml
from audio_support import tone_wav

import rtflow
from rtflow.sim import SimConfig


def test_three_lines_a_delegation_and_a_barge_in(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def lookup(arguments):\n    return 'order A-1234 ships tomorrow'\n")
    lines = [tone_wav(tmp_path / f"line{n}.wav", 0.6 + 0.2 * n) for n in range(1, 4)]
    document = {
        "providers": [
            {
                "id": "openai:live:gpt-live",
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
