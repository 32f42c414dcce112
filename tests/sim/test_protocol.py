"""Session lifecycle details: error codes, cancel, audio input with VAD, grading, rules scripts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.grading import grade_reply

from .conftest import ask, session, simulator, until

pytestmark = pytest.mark.anyio


async def test_invalid_events_keep_the_session() -> None:
    """Bad JSON, unknown types, bad session values and a second response.create get error events with codes.

    A frame that is not JSON is `invalid_json` (as live); JSON that is not an object, or an unknown event type, stays
    `invalid_event` (REALTIME_PROTOCOL.md lists it; no capture shows otherwise); a bad field is `invalid_value`."""
    async with simulator() as sim, session(sim) as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["error"]["code"] == "invalid_json"
        await ws.send("[1, 2]")
        assert json.loads(await ws.recv())["error"]["code"] == "invalid_event"
        await ws.send(b'{"type": "response.create"}')
        assert json.loads(await ws.recv())["error"]["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "response.explode", "event_id": "e1"}))
        error = json.loads(await ws.recv())["error"]
        assert (error["code"], error["event_id"]) == ("invalid_event", "e1")
        await ws.send(
            json.dumps(
                {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text", "audio"]}}
            )
        )
        assert json.loads(await ws.recv())["error"]["code"] == "invalid_value"
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        assert json.loads(await ws.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
        await ws.send(json.dumps({"type": "response.cancel"}))
        assert json.loads(await ws.recv())["error"]["code"] == "response_cancel_not_active"
        await ask(ws, "one")
        await ws.send(json.dumps({"type": "response.create"}))
        codes = [json.loads(f).get("error", {}).get("code") for f in await until(ws, "response.done")]
        assert "conversation_already_has_active_response" in codes


async def test_cancel_ends_response_cancelled() -> None:
    """response.cancel during a slow response ends it with status cancelled, reason client_cancelled."""
    async with SimServer(SimConfig(record_events=True, latency={"per_delta_ms": 50})) as sim, session(sim) as ws:
        await ask(ws, "a long answer please")
        await until(ws, "response.output_text.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        done = json.loads((await until(ws, "response.done"))[-1])["response"]
        assert (done["status"], done["status_details"]["reason"]) == ("cancelled", "client_cancelled")


def tone_then_silence(speech_s: float, silence_s: float) -> bytes:
    t = np.arange(int(24000 * speech_s)) / 24000
    speech = (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
    return speech.tobytes() + np.zeros(int(24000 * silence_s), dtype="<i2").tobytes()


async def test_server_vad_commits_transcribes_and_answers() -> None:
    """Speech then silence triggers speech_started/stopped, a commit, a transcript and a reply that uses it."""
    async with simulator() as sim, session(sim) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {
                            "input": {
                                "transcription": {"model": "whisper-1"},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                            }
                        },
                    },
                }
            )
        )
        await until(ws, "session.updated")
        audio = base64.b64encode(tone_then_silence(1.0, 0.5)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        events = [json.loads(f) for f in await until(ws, "response.done")]
        types = [e["type"] for e in events]
        assert types.index("input_audio_buffer.speech_started") < types.index("input_audio_buffer.committed")
        transcript = next(e for e in events if e["type"].endswith("transcription.completed"))["transcript"]
        assert transcript.startswith("audio of ")
        reply = next(e for e in events if e["type"] == "response.output_text.done")["text"]
        assert reply == f'You said: "{transcript}" (user messages: 1, instructions: none)'


async def test_out_of_band_response_leaves_conversation_alone() -> None:
    """A response with conversation none answers but adds nothing: the next reply still counts one user message."""
    async with simulator() as sim, session(sim) as ws:
        await ask(ws, "first")
        await until(ws, "response.done")
        await ws.send(
            json.dumps(
                {
                    "type": "response.create",
                    "response": {
                        "conversation": "none",
                        "input": [
                            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "aside"}]}
                        ],
                    },
                }
            )
        )
        done = json.loads((await until(ws, "response.done"))[-1])["response"]
        assert done["conversation_id"] is None
        assert done["output"][0]["content"][0]["text"].startswith('You said: "aside"')
        await ws.send(json.dumps({"type": "response.create"}))
        text = json.loads((await until(ws, "response.output_text.done"))[-1])["text"]
        assert "(user messages: 1," in text
        await until(ws, "rate_limits.updated")


def test_grading_scores_content_words() -> None:
    """Rubric words found in the output by 5-letter stems give the score; GARBAGE gives prose."""
    verdict = json.loads(grade_reply("Kyoto temples are lovely", "Mentions Kyoto and temple and Osaka"))
    assert (verdict["score"], verdict["pass"]) == (round(2 / 3, 4), True)
    with pytest.raises(ValueError):
        json.loads(grade_reply("x", "GARBAGE please"))


async def test_rules_script_overrides_reply(tmp_path: Path) -> None:
    """A rules script's matching reply replaces the default, with placeholders filled in."""
    script = tmp_path / "rules.yaml"
    script.write_text("- match: hello\n  reply: 'Hi! you said {text} ({user_messages})'\n", encoding="utf-8")
    async with simulator(script=script) as sim, session(sim) as ws:
        await ask(ws, "hello world")
        text = json.loads((await until(ws, "response.output_text.done"))[-1])["text"]
        assert text == "Hi! you said hello world (1)"
        await until(ws, "rate_limits.updated")
