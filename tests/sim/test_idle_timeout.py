"""The server VAD's idle timeout (`idle_timeout_ms`): a caller silent that long after the answer gets
`input_audio_buffer.timeout_triggered`, a committed (empty) user item and a prompt to go on, as the live service
sends them. Every event is validated against the official types by the `simulator` fixture."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection

from rtflow.sim.idle_timeout import IDLE_PROMPT

from .conftest import ask, events_until, session, simulator

pytestmark = pytest.mark.anyio


def idle_audio(idle_timeout_ms: int | None) -> dict[str, Any]:
    """The session's `audio`: server VAD with this idle timeout."""
    detection = {"type": "server_vad", "silence_duration_ms": 200, "idle_timeout_ms": idle_timeout_ms}
    return {"input": {"turn_detection": detection}}


async def answered(ws: ClientConnection, text: str) -> None:
    await ask(ws, text)
    await events_until(ws, "rate_limits.updated")


async def test_silence_after_the_answer_triggers_a_prompt() -> None:
    """The caller streams silence after the answer: once `idle_timeout_ms` has passed the server sends
    `timeout_triggered` over the silent stretch of the buffer, commits it as a user item, and answers with a prompt."""
    async with simulator() as sim, session(sim, audio=idle_audio(300)) as ws:
        await answered(ws, "hello")
        answered_at = time.perf_counter()
        silence = base64.b64encode(bytes(4800)).decode()  # 100 ms of pcm16 silence
        async with anyio.create_task_group() as tasks:

            async def microphone() -> None:
                for _ in range(8):
                    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
                    await anyio.sleep(0.1)

            tasks.start_soon(microphone)
            events = await events_until(ws, "response.done")
            fired_after = time.perf_counter() - answered_at
            tasks.cancel_scope.cancel()
    kinds = [event["type"] for event in events]
    triggered = events[kinds.index("input_audio_buffer.timeout_triggered")]
    committed = events[kinds.index("input_audio_buffer.committed")]
    assert kinds.index("input_audio_buffer.timeout_triggered") < kinds.index("input_audio_buffer.committed")
    assert committed["item_id"] == triggered["item_id"]
    assert 0.3 <= fired_after < 1.5
    assert triggered["audio_end_ms"] - triggered["audio_start_ms"] >= 200
    assert "input_audio_buffer.speech_started" not in kinds
    text = "".join(event["delta"] for event in events if event["type"] == "response.output_text.delta")
    assert text == IDLE_PROMPT
    assert events[-1]["response"]["status"] == "completed"


async def test_no_timeout_without_idle_timeout_ms_or_before_any_answer() -> None:
    """Without `idle_timeout_ms`, or before the first answer, a silent caller gets nothing."""
    for idle_timeout_ms, answer_first in ((None, True), (200, False)):
        async with simulator() as sim, session(sim, audio=idle_audio(idle_timeout_ms)) as ws:
            if answer_first:
                await answered(ws, "hello")
            with anyio.move_on_after(0.5) as waited:
                await ws.recv()
            assert waited.cancelled_caught, (idle_timeout_ms, answer_first)


async def test_speech_stops_the_timer() -> None:
    """The caller speaks before the timeout: no `timeout_triggered`, the VAD's turn is answered instead."""
    tone = bytes(b"\x00\x40" * 2400)  # loud enough for the energy VAD
    async with simulator() as sim, session(sim, audio=idle_audio(400)) as ws:
        await answered(ws, "hello")
        speech = base64.b64encode(tone * 5 + bytes(4800 * 3)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": speech}))
        events = await events_until(ws, "response.done")
        with anyio.move_on_after(0.3):
            events.append(json.loads(await ws.recv()))
        events.append({"type": "<end>"})
    kinds = [event["type"] for event in events]
    assert "input_audio_buffer.speech_started" in kinds
    assert "input_audio_buffer.timeout_triggered" not in kinds
