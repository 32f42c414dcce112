"""GPT-Live on the simulator: the official `client.live.connect()` holds a spoken, full-duplex session.

The caller streams a tone WAV made here in 20 ms frames, silence between utterances, at the rate it plays (as a
Live client must). Every server event is validated strictly against `openai.types.live.ServerEvent`.
"""

from __future__ import annotations

import base64
import collections
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.types.live import SessionConfigParam
from websockets.asyncio.client import connect

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.voice import SpokenAnswer

from .oracle import validate_live_event

pytestmark = pytest.mark.anyio

RATE = 24_000
FRAME_MS = 20
FRAME_BYTES = RATE * 2 * FRAME_MS // 1000
SILENCE = bytes(FRAME_BYTES)
START: SessionConfigParam = {
    "model": "gpt-live-1",
    "instructions": "Be brief.",
    "audio": {"format": {"type": "audio/pcm", "rate": 24000}},
    "delegation": {"type": "client"},
}


def tone_wav(path: Path, seconds: float = 2.0) -> list[bytes]:
    """A 440 Hz tone written as a WAV file and read back as 20 ms PCM16 frames: what a test caller says."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    with wave.open(str(path), "rb") as wav:
        pcm = wav.readframes(wav.getnframes())
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


class Caller:
    """Streams one frame every 20 ms, silence when it has nothing to say, as a Live client must."""

    def __init__(self, connection: Any, tone: list[bytes]) -> None:
        self.connection = connection
        self.tone = tone
        self.queue: collections.deque[bytes] = collections.deque()
        self.sent = 0

    def say(self, tone_ms: int, lead_ms: int = 200) -> int:
        """Queue silence then a tone; returns where the tone starts on the session timeline (ms of audio sent)."""
        self.queue.extend([SILENCE] * (lead_ms // FRAME_MS))
        starts = (self.sent + len(self.queue)) * FRAME_MS
        self.queue.extend(self.tone[: tone_ms // FRAME_MS])
        return starts

    async def run(self) -> None:
        """Send frames on a fixed schedule (read from the loop clock so late wake-ups do not add up)."""
        begin = anyio.current_time()
        while True:
            frame = self.queue.popleft() if self.queue else SILENCE
            await self.connection.session.input_audio.append(audio=base64.b64encode(frame).decode())
            self.sent += 1
            await anyio.sleep_until(begin + self.sent * FRAME_MS / 1000)


async def until(connection: Any, wanted: str) -> list[Any]:
    """Events up to and including the first of type `wanted`; an error event fails the test."""
    events = []
    while True:
        event = await connection.recv()
        events.append(event)
        if event.type == "error":
            raise AssertionError(f"unexpected error event: {event}")
        if event.type == wanted:
            return events


def joined(events: list[Any], event_type: str) -> str:
    return "".join(e.delta for e in events if e.type == event_type)


def live_records(sim: SimServer) -> list[dict[str, Any]]:
    return [entry for entry in sim.events if entry["endpoint"] == "live"]


def validate_all(sim: SimServer) -> collections.Counter[str]:
    """Validate every Live event the simulator sent; returns how many of each type."""
    counts: collections.Counter[str] = collections.Counter()
    for entry in live_records(sim):
        if entry["dir"] == "out" and not entry["type"].startswith("<"):
            validate_live_event(entry["payload"])
            counts[entry["type"]] += 1
    return counts


@asynccontextmanager
async def live_client(sim: SimServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(api_key="sk-test", websocket_base_url=sim.ws_base_url, base_url=sim.http_base_url) as c:
        yield c


def check_answer(events: list[Any], text: str, not_before_ms: int) -> None:
    """An answer: its transcript, one delta per word at its place in the audio, and 20 ms audio deltas."""
    assert joined(events, "session.output_transcript.delta") == text
    words = [e for e in events if e.type == "session.output_transcript.delta"]
    answer = SpokenAnswer(text.split(" "), "pcm16", 0.0)
    base = words[0].start_ms
    assert base >= not_before_ms
    for event, span in zip(words, answer.timeline.words, strict=True):
        assert (event.start_ms - base, event.end_ms - base) == (round(span.start_ms), round(span.end_ms))
    audio = [base64.b64decode(e.delta) for e in events if e.type == "session.output_audio.delta"]
    assert all(len(chunk) == FRAME_BYTES for chunk in audio[:-1])
    assert sum(map(len, audio)) == answer.size


def check_heard(events: list[Any], start_ms: int, tone_ms: int) -> None:
    """The caller's utterance transcribed as its duration, with timestamps on the session timeline."""
    heard = [e for e in events if e.type == "session.input_transcript.delta"]
    assert "".join(e.delta for e in heard) == f"audio of {tone_ms / 1000:.2f} seconds"
    assert (heard[0].start_ms, heard[-1].end_ms) == (start_ms, start_ms + tone_ms)


async def test_official_client_holds_a_live_session(tmp_path: Path) -> None:
    """Three utterances, a delegation round trip, a barge-in cut after live_yield_ms, usage and close."""
    tone = tone_wav(tmp_path / "tone.wav")
    config = SimConfig(record_events=True, live_yield_ms=100)
    async with SimServer(config) as sim, live_client(sim) as client, client.live.connect() as conn:
        await conn.session.start(session=START, event_id="evt_start")
        started = await conn.recv()
        assert started.type == "session.started"
        assert started.client_event_id == "evt_start"
        assert started.session.model == "gpt-live-1"
        async with anyio.create_task_group() as tasks:
            caller = Caller(conn, tone)
            tasks.start_soon(caller.run)

            at = caller.say(600)
            turn = await until(conn, "session.usage.updated")
            check_heard(turn, at, 600)
            check_answer(turn, 'You said: "audio of 0.60 seconds"', at + 600 + 500)
            assert turn[-1].usage.seconds == int(turn[-1].usage.seconds) >= 2

            at = caller.say(400)
            turn = await until(conn, "session.delegation.created")
            check_heard(turn, at, 400)
            assert not [e for e in turn if e.type.startswith("session.output")]
            delegation = turn[-1].delegation
            assert (delegation.target, delegation.type) == ("client", "delegation")
            assert turn[-1].offset_ms >= at + 400 + 500
            await conn.session.commentary.append(
                content="sunny and 21 degrees", delegation_id=delegation.id, event_id="evt_tool"
            )
            turn = await until(conn, "session.usage.updated")
            assert turn[0].type == "session.commentary.appended"
            assert turn[0].client_event_id == "evt_tool"
            check_answer(turn, "The tool said: sunny and 21 degrees", turn[0].start_ms)

            at = caller.say(800)
            turn = await until(conn, "session.output_audio.delta")
            check_heard(turn, at, 800)
            await anyio.sleep(0.3)
            caller.say(300, lead_ms=0)
            cut = await until(conn, "session.usage.updated")
            said = joined(turn + cut, "session.output_transcript.delta")
            full = 'You said: "audio of 0.80 seconds"'
            assert full.startswith(said) and len(said) < len(full)

            turn = await until(conn, "session.usage.updated")
            check_answer(turn, 'You said: "audio of 0.30 seconds"', 0)
            tasks.cancel_scope.cancel()
        await conn.session.close(event_id="evt_close")
        closed = await until(conn, "session.closed")
        assert (closed[-1].reason, closed[-1].client_event_id) == ("close_requested", "evt_close")
        assert closed[-1].usage.seconds >= turn[-1].usage.seconds
    counts = validate_all(sim)
    assert counts["session.started"] == counts["session.closed"] == counts["session.delegation.created"] == 1
    assert counts["session.usage.updated"] == 4
    assert_yielded_after(live_records(sim), 0.100)


def assert_yielded_after(records: list[dict[str, Any]], yield_s: float) -> None:
    """From the append that carried the barge-in to the cut answer's last audio delta: `yield_s`, ±30 ms."""
    barge = next(i for i, r in enumerate(records) if r["type"] == "live.speech_started" and r["payload"]["speaking"])
    trigger = next(r for r in reversed(records[:barge]) if r["type"] == "session.input_audio.append")
    ended = next(i for i in range(barge, len(records)) if records[i]["type"] == "live.answer")
    assert records[ended]["payload"]["cut"] is True
    last = next(r for r in reversed(records[barge:ended]) if r["type"] == "session.output_audio.delta")
    assert abs((last["ts"] - trigger["ts"]) - yield_s) <= 0.030


async def test_talks_over_never_yields(tmp_path: Path) -> None:
    """With live_talks_over the answer plays to its end through a barge-in, and the interruption is answered next."""
    tone = tone_wav(tmp_path / "tone.wav")
    config = SimConfig(record_events=True, live_talks_over=True)
    async with SimServer(config) as sim, live_client(sim) as client, client.live.connect() as conn:
        await conn.session.start(session={"model": "gpt-live-1"})
        assert (await conn.recv()).type == "session.started"
        async with anyio.create_task_group() as tasks:
            caller = Caller(conn, tone)
            tasks.start_soon(caller.run)
            caller.say(200)
            turn = await until(conn, "session.output_audio.delta")
            caller.say(200, lead_ms=0)
            turn += await until(conn, "session.usage.updated")
            assert joined(turn, "session.output_transcript.delta") == 'You said: "audio of 0.20 seconds"'
            turn = await until(conn, "session.usage.updated")
            assert joined(turn, "session.output_transcript.delta") == 'You said: "audio of 0.20 seconds"'
            tasks.cancel_scope.cancel()
        await conn.session.close()
        await until(conn, "session.closed")
    answers = [r["payload"] for r in live_records(sim) if r["type"] == "live.answer"]
    assert [a["cut"] for a in answers] == [False, False]
    validate_all(sim)


async def test_refusals_and_errors_keep_the_shape() -> None:
    """A bad key: error then close 3000. Before session.start, and for what is not simulated: error events."""
    async with SimServer(SimConfig(record_events=True, require_key="sk-good", live_idle_timeout_s=0.3)) as sim:
        url = f"{sim.ws_base_url}/live/sessions"
        async with connect(url, additional_headers={"Authorization": "Bearer sk-bad"}) as ws:
            assert json.loads(await ws.recv())["error"]["code"] == "invalid_api_key"
            await ws.wait_closed()
            assert ws.close_code == 3000
        async with connect(url, additional_headers={"Authorization": "Bearer sk-good"}) as ws:
            await ws.send(json.dumps({"type": "session.input_audio.append", "audio": "", "event_id": "e1"}))
            error = json.loads(await ws.recv())
            assert (error["error"]["code"], error["client_event_id"]) == ("session_not_started", "e1")
            await ws.send(json.dumps({"type": "session.start", "session": {"model": "gpt-live-1"}}))
            assert json.loads(await ws.recv())["type"] == "session.started"
            await ws.send(json.dumps({"type": "response.create"}))
            assert json.loads(await ws.recv())["error"]["code"] == "unsupported_event"
            closed = json.loads(await ws.recv())  # nothing more is sent: the idle backstop ends the session
            assert (closed["type"], closed["reason"]) == ("session.closed", "expired")
            await ws.wait_closed()
            assert ws.close_code == 1000
    validate_all(sim)
