"""Transcription sessions (`/v1/realtime?intent=transcription`): the simulator hears, transcribes and never answers,
in the live GA shapes. Every event is validated against the official types by the `simulator` fixture."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeTranscriptionSessionCreateRequest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtflow.sim import SimServer

from .conftest import HEADERS, events_until, server_events, simulator
from .oracle import validate_event

pytestmark = pytest.mark.anyio

TRANSCRIBE = {"model": "gpt-4o-transcribe", "language": "en"}


@asynccontextmanager
async def transcription_socket(sim: SimServer, query: str = "intent=transcription") -> AsyncIterator[ClientConnection]:
    async with connect(f"{sim.ws_base_url}/realtime?{query}", additional_headers=HEADERS) as ws:
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    with anyio.fail_after(5):
        event: dict[str, Any] = json.loads(await ws.recv())
        return event


async def configure(ws: ClientConnection, **audio_input: Any) -> dict[str, Any]:
    """A transcription `session.update`; returns the `session.updated` session."""
    update = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}}
    await ws.send(json.dumps(update))
    updated = await receive(ws)
    assert updated["type"] == "session.updated", updated
    session: dict[str, Any] = updated["session"]
    return session


def pcm(seconds: float, loud: bool = True) -> str:
    samples = int(24000 * seconds)
    if not loud:
        return base64.b64encode(np.zeros(samples, dtype="<i2").tobytes()).decode()
    tone = (8000 * np.sin(2 * np.pi * 300 * np.arange(samples) / 24000)).astype("<i2")
    return base64.b64encode(tone.tobytes()).decode()


async def test_session_created_is_a_transcription_session() -> None:
    """The first event is `session.created` with a transcription session: `type: transcription`, live object name,
    server VAD with the transcription defaults, no transcription model yet, and none of the realtime keys."""
    async with simulator() as sim, transcription_socket(sim) as ws:
        created = await receive(ws)
    assert created["type"] == "session.created"
    session = created["session"]
    assert (session["type"], session["object"]) == ("transcription", "realtime.transcription_session")
    assert set(session) == {"type", "object", "id", "expires_at", "audio", "include"}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"] is None
    model = validate_event(created)
    assert isinstance(model.session, RealtimeTranscriptionSessionCreateRequest)  # type: ignore[attr-defined]


async def test_update_then_manual_commit_streams_the_transcript() -> None:
    """A configured session (format, model, no VAD, noise reduction) echoes its settings; a committed buffer gives
    `committed`, the user item, transcript deltas and `completed` with token usage, and no response at all."""
    async with simulator() as sim, transcription_socket(sim) as ws:
        await receive(ws)
        session = await configure(
            ws,
            format={"type": "audio/pcm", "rate": 24000},
            transcription=TRANSCRIBE,
            turn_detection=None,
            noise_reduction={"type": "near_field"},
        )
        audio_input = session["audio"]["input"]
        assert audio_input["transcription"] == TRANSCRIBE and audio_input["turn_detection"] is None
        assert audio_input["noise_reduction"] == {"type": "near_field"}
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": pcm(1.5)}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = await events_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    deltas = [event["delta"] for event in events if event["type"].endswith("transcription.delta")]
    completed = events[-1]
    assert "".join(deltas) == completed["transcript"] == "audio of 1.50 seconds"
    assert completed["item_id"] == events[0]["item_id"] == events[1]["item"]["id"]
    assert completed["usage"]["type"] == "tokens" and completed["usage"]["input_token_details"]["audio_tokens"] == 15
    sent = [event["type"] for event in server_events(sim)]
    assert not any(kind.startswith(("response.", "rate_limits.")) for kind in sent)


async def test_server_vad_commits_and_transcribes_without_answering() -> None:
    """Under server VAD, speech then silence gives speech_started/stopped, the commit and the transcript; no
    response follows, though `create_response` defaults to true in conversations."""
    async with simulator() as sim, transcription_socket(sim) as ws:
        await receive(ws)
        await configure(ws, transcription={"model": "whisper-1"})
        audio = base64.b64decode(pcm(1.0)) + base64.b64decode(pcm(0.5, loud=False))
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}))
        events = await events_until(ws, "conversation.item.input_audio_transcription.completed")
        await anyio.sleep(0.1)
    kinds = [event["type"] for event in events]
    assert kinds[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert events[-1]["usage"]["type"] == "duration"
    assert not any(event["type"].startswith("response.") for event in server_events(sim))


async def test_response_create_is_refused_and_the_session_stays_open() -> None:
    """`response.create` in a transcription session gets the unknown-event error (echoing the client's event id
    and naming what the session supports); audio committed afterwards is still transcribed."""
    async with simulator() as sim, transcription_socket(sim) as ws:
        await receive(ws)
        await configure(ws, transcription={"model": "gpt-4o-mini-transcribe"}, turn_detection=None)
        await ws.send(json.dumps({"type": "response.create", "event_id": "evt_resp"}))
        error = (await receive(ws))["error"]
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": pcm(0.5)}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        completed = (await events_until(ws, "conversation.item.input_audio_transcription.completed"))[-1]
    assert (error["type"], error["code"], error["param"], error["event_id"]) == (
        "invalid_request_error",
        "invalid_event",
        "type",
        "evt_resp",
    )
    assert "'response.create'" in error["message"] and "'input_audio_buffer.commit'" in error["message"]
    assert completed["transcript"] == "audio of 0.50 seconds"


async def test_session_kinds_refuse_each_others_updates() -> None:
    """A realtime-shaped update in a transcription session, and a transcription-shaped one in a realtime session,
    get the live `invalid_parameter` errors; neither session changes."""
    async with simulator() as sim:
        async with transcription_socket(sim) as ws:
            await receive(ws)
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            in_transcription = (await receive(ws))["error"]
        async with connect(f"{sim.ws_base_url}/realtime?model=gpt-realtime", additional_headers=HEADERS) as ws:
            await receive(ws)
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription"}}))
            in_realtime = (await receive(ws))["error"]
    assert in_transcription["code"] == in_realtime["code"] == "invalid_parameter"
    assert in_transcription["message"] == (
        "Passing a realtime session update event to a transcription session is not allowed."
    )
    assert (
        in_realtime["message"] == "Passing a transcription session update event to a realtime session is not allowed."
    )


async def test_streaming_models_refuse_turn_detection() -> None:
    """`gpt-realtime-whisper` segments audio itself: server VAD with it is refused, naming the parameter."""
    async with simulator() as sim, transcription_socket(sim) as ws:
        await receive(ws)
        update = {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "transcription": {"model": "gpt-realtime-whisper"},
                        "turn_detection": {"type": "server_vad"},
                    }
                },
            },
        }
        await ws.send(json.dumps(update))
        error = (await receive(ws))["error"]
        accepted = await configure(ws, transcription={"model": "gpt-realtime-whisper"}, turn_detection=None)
    assert (error["message"], error["param"]) == (
        "Turn detection is not supported for this transcription model.",
        "session.audio.input.turn_detection",
    )
    assert accepted["audio"]["input"]["transcription"]["model"] == "gpt-realtime-whisper"


async def test_a_model_on_a_transcription_url_is_refused() -> None:
    """`?intent=transcription&model=...` gets the live `invalid_model` error, then close 3000."""
    async with simulator() as sim, transcription_socket(sim, "intent=transcription&model=gpt-4o-transcribe") as ws:
        error = (await receive(ws))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert (error["code"], error["message"]) == (
        "invalid_model",
        "You must not provide a model parameter for transcription sessions.",
    )
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000


async def test_official_client_transcribes_with_intent() -> None:
    """The official client opens a transcription session with `extra_query={"intent": "transcription"}`, configures
    it, streams audio and reads the transcript; its `response.create` comes back as an error event."""
    async with (
        simulator() as sim,
        AsyncOpenAI(api_key="sk-test", websocket_base_url=sim.ws_base_url) as client,
        client.realtime.connect(extra_query={"intent": "transcription"}) as connection,
    ):
        created = await connection.recv()
        await connection.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}},
            }
        )
        updated = await connection.recv()
        await connection.input_audio_buffer.append(audio=pcm(0.75))
        await connection.input_audio_buffer.commit()
        deltas = []
        with anyio.fail_after(5):
            async for event in connection:
                if event.type == "conversation.item.input_audio_transcription.delta":
                    deltas.append(event.delta)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    transcript = event.transcript
                    break
        await connection.response.create()
        refused = await connection.recv()
    assert created.type == "session.created" and isinstance(created.session, RealtimeTranscriptionSessionCreateRequest)
    assert updated.type == "session.updated"
    assert "".join(deltas) == transcript == "audio of 0.75 seconds"
    assert refused.type == "error" and refused.error.code == "invalid_event"
