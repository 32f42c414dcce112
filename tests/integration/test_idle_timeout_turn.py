"""A realtime turn whose caller stays silent after the answer, against the simulator: the provider's
`idle_timeout_ms` reaches the session, the server's idle timeout fires during the silence, and the turn record
shows the `idle_timeout` outcome (in `idle_timeouts` and on the event's mark), with the server's prompt kept out of
the answer."""

from __future__ import annotations

from pathlib import Path

import yaml

import rtflow
from rtflow.sim import SimConfig
from rtflow.sim.idle_timeout import IDLE_PROMPT


def test_a_silent_caller_gets_an_idle_timeout_outcome(tmp_path: Path) -> None:
    document = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "label": "voice",
                "config": {
                    "modalities": ["text"],
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                    "idle_timeout_ms": 400,
                    "audio_chunk_ms": 100,
                },
            }
        ],
        "prompts": ["{{ q }}"],
        "threads": {"call": [{"q": "hello there"}, {"silence": "700ms"}]},
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    result = rtflow.run(flow, sim=SimConfig(record_events=True), store=False)
    (turn,) = result.turns
    assert turn.status == "passed", turn.error
    assert turn.output is not None
    assert turn.output.text.startswith('You said: "hello there"')
    assert IDLE_PROMPT not in turn.output.text  # the server's prompt is not the answer
    marks = [mark for mark in turn.output.events if mark.type == "input_audio_buffer.timeout_triggered"]
    assert marks, [mark.type for mark in turn.output.events]
    assert marks[0].detail is not None and marks[0].detail.startswith("idle_timeout: the caller was silent from")
    assert repr(IDLE_PROMPT) in marks[0].detail
    (fired,) = turn.output.idle_timeouts  # once: the silence lasted less than two timeouts
    assert fired == f"at {marks[0].at_ms:.0f} ms into the turn: {marks[0].detail.removeprefix('idle_timeout: ')}"
    assert fired.endswith(f"; the agent prompted: {IDLE_PROMPT!r}")


def test_a_caller_who_answers_has_no_idle_timeouts(tmp_path: Path) -> None:
    """Without the silence after the answer the timeout never fires: the field stays empty."""
    document = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "config": {
                    "modalities": ["text"],
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                    "idle_timeout_ms": 400,
                },
            }
        ],
        "prompts": ["{{ q }}"],
        "threads": {"call": [{"q": "hello there"}]},
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    (turn,) = rtflow.run(flow, sim=True, store=False).turns
    assert turn.status == "passed", turn.error
    assert turn.output is not None and turn.output.idle_timeouts == []
