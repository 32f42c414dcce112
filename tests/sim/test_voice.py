"""Spoken answers in time: the word timeline, paced audio, the live cancel order and delay, truncation, and what
each response saw (the `response.context` log record)."""

from __future__ import annotations

import base64
import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect

from rtflow.sim import SimConfig, SimServer, VoiceConfig
from rtflow.sim.audio import synthesize_word
from rtflow.sim.cli import sim as sim_command
from rtflow.sim.voice import SpokenAnswer

from .conftest import HEADERS, simulator

pytestmark = pytest.mark.anyio

REPLY = "alpha beta gamma delta epsilon"
BYTES_PER_MS = 48  # pcm16 at 24 kHz


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """`speak` gets a fixed five-word answer; `weather` a function call; audio turns a short answer."""
    script = tmp_path / "rules.yaml"
    script.write_text(
        f"- match: speak\n  reply: {REPLY}\n"
        "- match: weather\n  call: {name: get_weather, arguments: {city: Oslo}}\n"
        "- match: 'audio of'\n  reply: 'heard {text}'\n",
        encoding="utf-8",
    )
    return script


def word_ms(word: str) -> float:
    """How long one word's tone and gap play (pcm16)."""
    return len(base64.b64decode(synthesize_word(word, "pcm16"))) / BYTES_PER_MS


def word_starts(text: str, leading_ms: float) -> list[float]:
    """Where each word's audio starts, leading silence included."""
    starts, at = [], leading_ms
    for word in text.split(" "):
        starts.append(at)
        at += word_ms(word)
    return starts


@asynccontextmanager
async def voice_session(sim: SimServer, beta: bool = False, **session: Any) -> AsyncIterator[ClientConnection]:
    """A client on a session with audio output (and `session` merged into the update)."""
    headers = {**HEADERS, **({"OpenAI-Beta": "realtime=v1"} if beta else {})}
    async with connect(f"{sim.ws_base_url}/realtime?model=gpt-realtime", additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        update = {"modalities": ["text", "audio"]} if beta else {"type": "realtime", "output_modalities": ["audio"]}
        await ws.send(json.dumps({"type": "session.update", "session": {**update, **session}}))
        assert json.loads(await ws.recv())["type"] == "session.updated"
        yield ws


async def say(ws: ClientConnection, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))


async def events_until(ws: ClientConnection, wanted: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Events up to and including the first of type `wanted`; each gets `_at` (perf_counter on arrival)."""
    events = []
    with anyio.fail_after(timeout):
        while True:
            event = json.loads(await ws.recv())
            event["_at"] = time.perf_counter()
            events.append(event)
            if event["type"] == wanted:
                return events


def audio_names(beta: bool) -> tuple[str, str]:
    return (
        ("response.audio", "response.audio_transcript")
        if beta
        else ("response.output_audio", "response.output_audio_transcript")
    )


def state_records(sim: SimServer) -> list[dict[str, Any]]:
    return [entry for entry in sim.events if entry["dir"] == "state"]


def test_voice_config_and_cli_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults change nothing; bounds are checked; `rtflow sim serve` passes its four options through."""
    assert VoiceConfig() == VoiceConfig(
        realtime_audio=False, audio_chunk_ms=20, leading_silence_ms=0.0, cancel_delay_ms=0.0
    )
    assert SimConfig().voice == VoiceConfig()
    for bad in ({"audio_chunk_ms": 4}, {"audio_chunk_ms": 1001}, {"leading_silence_ms": -1}, {"cancel_delay_ms": -1}):
        with pytest.raises(ValidationError):
            VoiceConfig.model_validate(bad)

    class Captured(Exception):
        pass

    seen: list[SimConfig] = []

    class FakeServer:
        def __init__(self, config: SimConfig) -> None:
            seen.append(config)

        async def __aenter__(self) -> None:
            raise Captured

        async def __aexit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr("rtflow.sim.server.SimServer", FakeServer)
    options = ["--realtime-audio", "--audio-chunk-ms", "40", "--leading-silence-ms", "250", "--cancel-delay-ms", "120"]
    options += ["--audio-lead-ms", "30"]
    result = CliRunner().invoke(sim_command, ["serve", "--port", "0", *options])
    assert isinstance(result.exception, Captured), result.output
    assert seen[0].voice == VoiceConfig(
        realtime_audio=True, audio_chunk_ms=40, leading_silence_ms=250, cancel_delay_ms=120, audio_lead_ms=30
    )
    assert CliRunner().invoke(sim_command, ["serve", "--audio-chunk-ms", "2"]).exit_code == 2


@pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw"])
def test_spoken_answer_timeline_and_chunks(audio_format: str) -> None:
    """The timeline counts the leading silence; paced chunks are whole samples of `chunk_ms`, each word's transcript
    before the chunk its start is in; both cuttings carry the same audio and transcript."""
    per_ms = 48 if audio_format == "pcm16" else 8
    spoken = SpokenAnswer(REPLY.split(" "), audio_format, 30)
    words = spoken.timeline.words
    assert words[0].start_ms == 30 and all(a.end_ms == b.start_ms for a, b in itertools.pairwise(words))
    assert words[-1].end_ms == spoken.size / per_ms
    assert [w.text for w in words] == ["alpha ", "beta ", "gamma ", "delta ", "epsilon"]
    paced = list(spoken.paced_steps(25))
    assert all(step.size == 25 * per_ms for step in paced[:-1]) and 0 < paced[-1].size <= 25 * per_ms
    assert [index for index, step in enumerate(paced) for _ in step.transcript] == [
        int(w.start_ms // 25) for w in words
    ]
    unpaced = list(spoken.word_steps())
    assert [step.transcript for step in unpaced] == [(), *((w.text,) for w in words)]
    assert b"".join(base64.b64decode(step.audio) for step in unpaced) == b"".join(
        base64.b64decode(step.audio) for step in paced
    )
    assert sum(step.size for step in unpaced) == sum(step.size for step in paced) == spoken.size
    assert spoken.timeline.transcript_before(words[1].start_ms) == "alpha"
    assert spoken.timeline.transcript_before(words[1].start_ms + 0.1) == "alpha beta"
    assert spoken.timeline.transcript_before(30) == ""


@pytest.mark.parametrize("beta", [False, True])
async def test_unpaced_answer_sends_silence_then_each_word_after_its_transcript(rules: Path, beta: bool) -> None:
    """Unpaced: the leading silence is a delta of its own, then each word's transcript just before its audio."""
    audio_delta, transcript = (f"{name}.delta" for name in audio_names(beta))
    async with (
        simulator(script=rules, voice=VoiceConfig(leading_silence_ms=100)) as sim,
        voice_session(sim, beta) as ws,
    ):
        await say(ws, "speak")
        events = await events_until(ws, "response.done")
    spoken = [e for e in events if e["type"] in (audio_delta, transcript)]
    assert spoken[0]["type"] == audio_delta and base64.b64decode(spoken[0]["delta"]) == bytes(100 * BYTES_PER_MS)
    words = REPLY.split(" ")
    expected: list[tuple[str, str]] = []
    for position, word in enumerate(words):
        chunk = word if position == len(words) - 1 else word + " "
        expected += [(transcript, chunk), (audio_delta, synthesize_word(word, "pcm16"))]
    assert [(e["type"], e["delta"]) for e in spoken[1:]] == expected
    assert events[-1]["response"]["status"] == "completed"


async def test_paced_answer_cuts_audio_into_chunks_sent_at_the_rate_they_play(rules: Path) -> None:
    """Paced: equal chunk deltas, delta k about k chunks after the first (no drift); each word's transcript goes
    just before the chunk its start is in, the leading silence counting."""
    chunk_ms, leading_ms = 20, 100
    voice = VoiceConfig(realtime_audio=True, audio_chunk_ms=chunk_ms, leading_silence_ms=leading_ms, audio_lead_ms=0)
    async with simulator(script=rules, voice=voice) as sim, voice_session(sim) as ws:
        await say(ws, "speak")
        events = await events_until(ws, "response.done")
    audio = [
        e for e in events if e["type"] in ("response.output_audio.delta", "response.output_audio_transcript.delta")
    ]
    chunks = [base64.b64decode(e["delta"]) for e in audio if e["type"] == "response.output_audio.delta"]
    total_ms = leading_ms + sum(word_ms(word) for word in REPLY.split(" "))
    assert len(chunks) == math.ceil(total_ms / chunk_ms)
    assert all(len(chunk) == chunk_ms * BYTES_PER_MS for chunk in chunks[:-1])
    expected = bytes(leading_ms * BYTES_PER_MS) + b"".join(
        base64.b64decode(synthesize_word(word, "pcm16")) for word in REPLY.split(" ")
    )
    assert b"".join(chunks) == expected
    # Which chunk each transcript delta came just before.
    placed, chunk_index = [], 0
    for event in audio:
        if event["type"] == "response.output_audio.delta":
            chunk_index += 1
        else:
            placed.append(chunk_index)
    assert placed == [int(start // chunk_ms) for start in word_starts(REPLY, leading_ms)]
    # Timing from the server's own record of when each delta left: never early, and no drift (a sleep per chunk
    # would make every later delta later still; sleeping until t0 + k * chunk puts some back on time).
    sent_at = [e["ts"] for e in sim.events if e["dir"] == "out" and e["type"] == "response.output_audio.delta"]
    lateness = [(at - sent_at[0]) * 1000 - index * chunk_ms for index, at in enumerate(sent_at)]
    assert min(lateness) >= -3, lateness
    assert max(lateness) <= 150, lateness
    assert min(lateness[-10:]) <= 25, lateness


async def test_paced_answer_keeps_its_lead_ahead_of_playback(rules: Path) -> None:
    """With `audio_lead_ms`, the first lead's worth of chunks leave at once and each later one that far ahead of
    its playing time, so a speaker fed by them never waits on a late delta."""
    chunk_ms, lead_ms = 20, 100
    voice = VoiceConfig(realtime_audio=True, audio_chunk_ms=chunk_ms, audio_lead_ms=lead_ms)
    async with simulator(script=rules, voice=voice) as sim, voice_session(sim) as ws:
        await say(ws, "speak")
        await events_until(ws, "response.done")
    sent_at = [e["ts"] for e in sim.events if e["dir"] == "out" and e["type"] == "response.output_audio.delta"]
    ahead = [index * chunk_ms - (at - sent_at[0]) * 1000 for index, at in enumerate(sent_at)]
    assert all(value <= lead_ms + 3 for value in ahead), ahead  # never more than the lead ahead
    assert min(ahead[lead_ms // chunk_ms + 1 :]) >= lead_ms - 150, ahead  # and about that far, late wake-ups aside
    assert max(ahead[-10:]) >= lead_ms - 25, ahead


def cancel_tail(events: list[dict[str, Any]]) -> list[str]:
    """The event types after the last delta: how the cancel closed the response."""
    types = [e["type"] for e in events]
    start = max(i for i, t in enumerate(types) if t.endswith(".delta")) + 1
    return types[start:]


@pytest.mark.parametrize("beta", [False, True])
async def test_cancel_streams_for_the_delay_then_closes_in_the_live_order(rules: Path, beta: bool) -> None:
    """After response.cancel the audio goes on for cancel_delay_ms, then the open item is closed with what was sent
    and response.done says cancelled, cancel_delay_ms after the cancel."""
    delay_ms = 150
    voice = VoiceConfig(realtime_audio=True, audio_chunk_ms=20, cancel_delay_ms=delay_ms)
    audio_name, transcript_name = audio_names(beta)
    async with simulator(script=rules, voice=voice) as sim, voice_session(sim, beta) as ws:
        await say(ws, "speak")
        before = await events_until(ws, f"{audio_name}.delta")
        await anyio.sleep(0.2)
        cancelled_at = time.perf_counter()
        await ws.send(json.dumps({"type": "response.cancel", "event_id": "evt_cancel"}))
        events = before + await events_until(ws, "response.done")
        await events_until(ws, "rate_limits.updated")
    done = events[-1]
    assert (done["_at"] - cancelled_at) * 1000 == pytest.approx(delay_ms, abs=25)
    after_cancel = [e for e in events if e["_at"] > cancelled_at and e["type"] == f"{audio_name}.delta"]
    assert len(after_cancel) >= 3, "the audio did not go on during the cancel delay"
    expected_tail = [f"{audio_name}.done", f"{transcript_name}.done", "response.content_part.done"]
    expected_tail += [] if beta else ["conversation.item.done"]
    expected_tail += ["response.output_item.done", "response.done"]
    assert cancel_tail(events) == expected_tail
    sent = "".join(e["delta"] for e in events if e["type"] == f"{transcript_name}.delta")
    assert sent and sent != REPLY
    by_type = {e["type"]: e for e in events}
    assert by_type[f"{transcript_name}.done"]["transcript"] == sent
    assert by_type["response.content_part.done"]["part"] == {"type": "audio", "transcript": sent}
    assert by_type["response.output_item.done"]["item"]["status"] == "incomplete"
    response = done["response"]
    assert (response["status"], response["status_details"]["reason"]) == ("cancelled", "client_cancelled")
    assert response["output"][0]["status"] == "incomplete"


async def test_cancel_of_a_text_answer_closes_its_text(rules: Path) -> None:
    """A text answer cancelled mid-stream gets output_text.done with the text sent so far."""
    config = {"voice": VoiceConfig(cancel_delay_ms=60), "latency": {"per_delta_ms": 40}}
    async with simulator(**config) as sim, voice_session(sim, output_modalities=["text"]) as ws:
        await say(ws, "one two three four five six seven eight nine ten eleven twelve")
        before = await events_until(ws, "response.output_text.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        events = before + await events_until(ws, "response.done")
    assert cancel_tail(events) == [
        "response.output_text.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    sent = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == sent
    assert events[-1]["response"]["status"] == "cancelled"


async def test_cancel_with_a_function_call_open_skips_its_arguments_done(rules: Path) -> None:
    """A function call the cancel catches open gets no function_call_arguments.done, but its output_item.done."""
    config = {"voice": VoiceConfig(cancel_delay_ms=80), "latency": {"first_delta_ms": 20}}
    async with simulator(script=rules, **config) as sim, voice_session(sim) as ws:
        await say(ws, "weather please")
        await events_until(ws, "response.created")
        await ws.send(json.dumps({"type": "response.cancel"}))
        events = await events_until(ws, "response.done")
    types = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in types
    assert "response.function_call_arguments.done" not in types
    assert types[-3:] == ["conversation.item.done", "response.output_item.done", "response.done"]
    assert events[-2]["item"]["type"] == "function_call" and events[-2]["item"]["status"] == "incomplete"
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"


async def test_zero_delay_cancel_closes_the_open_audio_item_at_once(rules: Path) -> None:
    """With no cancel delay the cancel lands at once, and still closes the open item in the live order."""
    async with (
        simulator(script=rules, voice=VoiceConfig(realtime_audio=True)) as sim,
        voice_session(sim) as ws,
    ):
        await say(ws, "speak")
        before = await events_until(ws, "response.output_audio.delta")
        cancelled_at = time.perf_counter()
        await ws.send(json.dumps({"type": "response.cancel"}))
        events = before + await events_until(ws, "response.done")
    assert (events[-1]["_at"] - cancelled_at) * 1000 < 50
    assert cancel_tail(events) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]


async def truncate(ws: ClientConnection, item_id: str, audio_end_ms: int) -> dict[str, Any]:
    await ws.send(
        json.dumps(
            {
                "type": "conversation.item.truncate",
                "event_id": "evt_truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )
    )
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def retrieve(ws: ClientConnection, item_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": item_id}))
    event = json.loads(await ws.recv())
    assert event["type"] == "conversation.item.retrieved"
    return event["item"]  # type: ignore[no-any-return]


async def test_truncate_keeps_the_words_whose_audio_started_before_the_cut(rules: Path) -> None:
    """The item keeps the words started before audio_end_ms (leading silence counts); a cut beyond its audio is
    an error naming both lengths; the next response answers from the truncated item."""
    leading_ms = 200
    async with (
        simulator(script=rules, voice=VoiceConfig(leading_silence_ms=leading_ms)) as sim,
        voice_session(sim) as ws,
    ):
        await say(ws, "speak")
        events = await events_until(ws, "response.done")
        item_id = events[-1]["response"]["output"][0]["id"]
        await events_until(ws, "rate_limits.updated")
        total_ms = math.ceil(leading_ms + sum(word_ms(word) for word in REPLY.split(" ")))

        error = await truncate(ws, item_id, total_ms + 1)
        assert error["type"] == "error"
        assert error["error"] == {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": f"Audio content of {total_ms}ms is already shorter than {total_ms + 1}ms",
            "param": "audio_end_ms",
            "event_id": "evt_truncate",
        }

        third_start = word_starts(REPLY, leading_ms)[2]
        cut = math.floor(third_start) + 1
        truncated = await truncate(ws, item_id, cut)
        assert truncated == {
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": cut,
            "event_id": truncated["event_id"],
        }
        assert (await retrieve(ws, item_id))["content"][0]["transcript"] == "alpha beta gamma"

        # The item now holds `cut` ms of audio: a cut beyond that is refused, one inside the silence leaves nothing.
        error = await truncate(ws, item_id, cut + 1)
        assert error["error"]["message"] == f"Audio content of {cut}ms is already shorter than {cut + 1}ms"
        assert (await truncate(ws, item_id, leading_ms - 1))["type"] == "conversation.item.truncated"
        assert (await retrieve(ws, item_id))["content"][0]["transcript"] == ""

        await say(ws, "and now?")
        await events_until(ws, "response.done")
    contexts = state_records(sim)
    assert len(contexts) == 2
    latest = contexts[-1]["payload"]
    assistant = next(entry for entry in latest["items"] if entry["id"] == item_id)
    assert assistant == {"id": item_id, "role": "assistant", "type": "message", "text": ""}


async def test_barge_in_truncation_sticks_while_the_cancel_lands(rules: Path) -> None:
    """cancel then truncate at once (as a client does on barge-in): the audio still streaming during the cancel
    delay does not grow the truncated item back."""
    voice = VoiceConfig(realtime_audio=True, audio_chunk_ms=20, cancel_delay_ms=120, leading_silence_ms=50)
    async with simulator(script=rules, voice=voice) as sim, voice_session(sim) as ws:
        await say(ws, "speak")
        first = await events_until(ws, "response.output_audio.delta")
        item_id = first[-1]["item_id"]
        await anyio.sleep(0.35)
        cut = math.floor(word_starts(REPLY, 50)[1]) + 1  # "beta" had started
        await ws.send(json.dumps({"type": "response.cancel"}))
        await ws.send(
            json.dumps(
                {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": cut}
            )
        )
        events = await events_until(ws, "response.done")
        assert "conversation.item.truncated" in [e["type"] for e in events]
        after_truncate = events[[e["type"] for e in events].index("conversation.item.truncated") + 1 :]
        assert any(e["type"] == "response.output_audio.delta" for e in after_truncate)
        await events_until(ws, "rate_limits.updated")
        assert (await retrieve(ws, item_id))["content"][0]["transcript"] == "alpha beta"
        await say(ws, "next")
        await events_until(ws, "response.done")
    latest = state_records(sim)[-1]["payload"]["items"]
    assert [entry["text"] for entry in latest] == ["speak", "alpha beta", "next"]


async def test_context_record_lists_what_each_response_saw(tmp_path: Path) -> None:
    """Each response that starts leaves one response.context state record, in memory and in the JSONL log."""
    log_path = tmp_path / "sim.jsonl"
    async with (
        simulator(log_path=log_path) as sim,
        voice_session(sim, output_modalities=["text"]) as ws,
    ):
        await say(ws, "first")
        done = (await events_until(ws, "response.done"))[-1]["response"]
        await say(ws, "second")
        second = (await events_until(ws, "response.done"))[-1]["response"]
    records = state_records(sim)
    assert [(r["type"], r["conn"], r["endpoint"]) for r in records] == [("response.context", "rt-1", "realtime")] * 2
    assert records[0]["payload"]["response_id"] == done["id"]
    assert records[1]["payload"]["response_id"] == second["id"]
    items = records[1]["payload"]["items"]
    assert [(i["role"], i["type"], i["text"]) for i in items] == [
        ("user", "message", "first"),
        ("assistant", "message", done["output"][0]["content"][0]["text"]),
        ("user", "message", "second"),
    ]
    assert items[1]["id"] == done["output"][0]["id"]
    logged = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert [r["payload"] for r in logged if r["dir"] == "state"] == [r["payload"] for r in records]
    # The record comes before the response's first event.
    types = [(r["dir"], r["type"]) for r in logged]
    assert types.index(("state", "response.context")) < types.index(("out", "response.created"))


def loud(seconds: float) -> bytes:
    t = np.arange(int(24000 * seconds)) / 24000
    return (0.5 * 32767 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def quiet(seconds: float) -> bytes:
    return bytes(2 * int(24000 * seconds))


async def append(ws: ClientConnection, audio: bytes) -> None:
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}))


@pytest.mark.parametrize("beta", [False, True])
async def test_input_transcription_streams_deltas_before_completed(beta: bool) -> None:
    """With transcription on, a commit's transcript arrives as deltas, then the completed event."""
    transcription = {"model": "whisper-1"}
    session = (
        {"input_audio_transcription": transcription, "turn_detection": None}
        if beta
        else {"audio": {"input": {"transcription": transcription, "turn_detection": None}}}
    )
    async with simulator() as sim, voice_session(sim, beta, **session) as ws:
        await append(ws, loud(0.5))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = await events_until(ws, "conversation.item.input_audio_transcription.completed")
    deltas = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = events[-1]
    assert len(deltas) > 1
    assert "".join(e["delta"] for e in deltas) == completed["transcript"] == "audio of 0.50 seconds"
    assert {(e["item_id"], e["content_index"]) for e in deltas} == {(completed["item_id"], 0)}


async def test_server_vad_barge_in_cancels_in_the_live_order_then_answers_the_new_speech(rules: Path) -> None:
    """Loud input during a paced answer: speech_started, then (after the cancel delay) the live cancel order with
    reason turn_detected; once the caller stops, a new response answers the new audio."""
    voice = VoiceConfig(realtime_audio=True, audio_chunk_ms=20, cancel_delay_ms=100)
    detection = {"type": "server_vad", "silence_duration_ms": 200}
    session: dict[str, Any] = {"audio": {"input": {"turn_detection": detection}}}
    async with simulator(script=rules, voice=voice) as sim, voice_session(sim, **session) as ws:
        await say(ws, "speak")
        events = await events_until(ws, "response.output_audio.delta")
        async with anyio.create_task_group() as tasks:

            async def speak_then_stop() -> None:
                for _ in range(8):  # 0.4 s of speech, in real time
                    await append(ws, loud(0.05))
                    await anyio.sleep(0.05)
                for _ in range(8):
                    await append(ws, quiet(0.05))
                    await anyio.sleep(0.05)

            tasks.start_soon(speak_then_stop)
            events += await events_until(ws, "response.done")
            events += await events_until(ws, "response.done")
    types = [e["type"] for e in events]
    first_done = types.index("response.done")
    started = types.index("input_audio_buffer.speech_started")
    assert started < first_done
    assert events[first_done]["_at"] - events[started]["_at"] >= 0.08
    tail = [t for t in types[started : first_done + 1] if not t.endswith(".delta")]
    assert tail == [
        "input_audio_buffer.speech_started",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
    ]
    cancelled = events[first_done]["response"]
    assert (cancelled["status"], cancelled["status_details"]["reason"]) == ("cancelled", "turn_detected")
    later = types[first_done + 1 :]
    assert later.index("input_audio_buffer.speech_stopped") < later.index("input_audio_buffer.committed")
    answer = events[-1]["response"]
    assert answer["status"] == "completed"
    transcript = answer["output"][0]["content"][0]["transcript"]
    assert transcript.startswith("heard audio of 0.")
    contexts = state_records(sim)
    assert [entry["role"] for entry in contexts[-1]["payload"]["items"]] == ["user", "assistant", "user"]
