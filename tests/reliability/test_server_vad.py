"""Issue 11, item 4: server-VAD turns end like every other turn, and the simulator's VAD answers as the live one.

Under `server_vad` the client streams the clip and the server commits and answers it; the turn's first response is
read while the audio is still going out. A failure of that response (failed or cancelled, an `error` event, a
silent server) must be the turn's error, with its retries and fallback, never an exception group that ends the run.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from rtflow.errors import ProviderConnectionError, ProviderTimeoutError, ResponseFailedError
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.openai_realtime import RealtimeSession

from .conftest import DEADLINE, Peer, answer, error_event, provider, response_created, response_done, running

pytestmark = pytest.mark.anyio

CLIPS = Path(__file__).resolve().parents[2] / "flows" / "clips"
VAD = {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200}


def _voice_turn(clip: str = "q1.wav") -> TurnRequest:
    return TurnRequest(
        conversation_id="vad",
        turn_index=0,
        messages=[Message.of("user", "What is the capital of France?")],
        vars={"audio": str(CLIPS / clip)},
    )


def _vad_provider(server: Any, **config: Any) -> Any:
    return provider(server, modalities=["text"], turn_detection=VAD, audio_chunk_ms=100, **config)


async def _first_append(peer: Peer) -> None:
    await peer.send({"type": "session.created", "event_id": "event_s1", "session": {"id": "sess_1"}})
    await peer.expect("input_audio_buffer.append")


async def _listen(peer: Peer) -> None:
    """Read the rest of the microphone's audio until the client hangs up (`hold` would leave it queued)."""
    with anyio.move_on_after(DEADLINE * 2), contextlib.suppress(ConnectionClosed):
        while True:
            await peer.connection.recv()


async def _outcome(session: RealtimeSession) -> TurnOutput | BaseException:
    with anyio.fail_after(DEADLINE):
        try:
            return await session.send(_voice_turn())
        except Exception as exc:  # anything at all: the test asserts it is the one ProviderError it should be
            return exc
        finally:
            await session.aclose()


async def test_a_failed_first_response_is_the_turns_error() -> None:
    async def script(peer: Peer) -> None:
        await _first_append(peer)
        details = {"type": "failed", "error": {"type": "server_error", "message": "the model broke"}}
        await peer.send(response_created("resp_1"), response_done("resp_1", status="failed", status_details=details))
        await _listen(peer)

    async with running(script) as server:
        outcome = await _outcome(_vad_provider(server).session("vad"))
    assert isinstance(outcome, ResponseFailedError), repr(outcome)
    assert "response failed" in str(outcome) and "the model broke" in str(outcome)


async def test_a_session_expired_error_during_the_turn_is_a_connection_error() -> None:
    async def script(peer: Peer) -> None:
        await _first_append(peer)
        await peer.send(error_event("Your session hit the maximum duration of 60 minutes.", code="session_expired"))
        await _listen(peer)

    async with running(script) as server:
        outcome = await _outcome(_vad_provider(server).session("vad"))
    assert isinstance(outcome, ProviderConnectionError), repr(outcome)
    assert outcome.retryable and "session_expired" in str(outcome)


async def test_a_server_that_never_answers_the_speech_times_out() -> None:
    async def script(peer: Peer) -> None:
        await _first_append(peer)
        await _listen(peer)

    async with running(script) as server:
        outcome = await _outcome(_vad_provider(server).session("vad"))
    assert isinstance(outcome, ProviderTimeoutError), repr(outcome)


async def test_a_response_cancelled_by_more_speech_gives_way_to_the_next() -> None:
    """`turn_detected` means the caller went on speaking: the response that follows is the turn's answer."""

    async def script(peer: Peer) -> None:
        await _first_append(peer)
        details = {"type": "cancelled", "reason": "turn_detected"}
        await peer.send(response_created("resp_1"), response_done("resp_1", status="cancelled", status_details=details))
        await peer.send(*answer("resp_2", "Paris it is"))
        await _listen(peer)

    async with running(script) as server:
        session = _vad_provider(server).session("vad")
        outcome = await _outcome(session)
    assert isinstance(outcome, TurnOutput), repr(outcome)
    assert outcome.text == "Paris it is"
    assert any("turn_detected" in note and "next response" in note for note in session.protocol_warnings)


async def test_a_response_cancelled_by_the_client_is_still_an_error() -> None:
    async def script(peer: Peer) -> None:
        await _first_append(peer)
        details = {"type": "cancelled", "reason": "client_cancelled"}
        await peer.send(response_created("resp_1"), response_done("resp_1", status="cancelled", status_details=details))
        await _listen(peer)

    async with running(script) as server:
        outcome = await _outcome(_vad_provider(server).session("vad"))
    assert isinstance(outcome, ResponseFailedError), repr(outcome)
    assert outcome.response_status == "cancelled"


@pytest.mark.parametrize("silence_ms", [200, 500])
async def test_the_simulators_vad_answers_a_whole_clip_once(silence_ms: int, tmp_path: Path) -> None:
    """At the live default (200 ms) the VAD splits q1.wav; each cut response is cancelled, the last one answers."""
    from rtflow.providers.base import ProviderInfo
    from rtflow.providers.openai_realtime import RealtimeProvider
    from rtflow.sim import SimConfig, SimServer

    vad = {**VAD, "silence_duration_ms": silence_ms}
    async with SimServer(SimConfig(record_events=True)) as sim:
        config = {
            "api_base_url": sim.http_base_url,
            "api_key": "sk-sim",
            "modalities": ["text"],
            "turn_detection": vad,
            "audio_chunk_ms": 50,
        }
        session = RealtimeProvider(ProviderInfo(id="openai:realtime:gpt-realtime", label="v", config=config)).session(
            "vad"
        )
        with anyio.fail_after(10):
            output = await session.send(_voice_turn())
            await session.aclose()
    out = [e["payload"] for e in sim.events if e["dir"] == "out"]
    errors = [e for e in out if e["type"] == "error"]
    assert errors == [], json.dumps(errors)
    commits = [e for e in out if e["type"] == "input_audio_buffer.committed"]
    created = [e for e in out if e["type"] == "response.created"]
    assert len(created) <= len(commits)  # at most one response per committed turn
    done = [e["response"] for e in out if e["type"] == "response.done"]
    assert [r["status"] for r in done[:-1]] == ["cancelled"] * (len(done) - 1)
    assert all(r["status_details"]["reason"] == "turn_detected" for r in done[:-1])
    assert done[-1]["status"] == "completed"
    # The answer is to the whole clip (1.5 s of speech and the silence the VAD waited for), not to a piece of it.
    assert output.text.startswith('You said: "audio of ')
    seconds = float(output.text.split("audio of ")[1].split()[0])
    if len(commits) == 1:
        assert 1.5 <= seconds <= 1.5 + silence_ms / 1000 + 0.25
