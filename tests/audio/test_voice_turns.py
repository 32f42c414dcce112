"""Voice turns against the simulator, in both dialects and in pcm16 and G.711: audio in, transcript, audio out."""

from __future__ import annotations

import base64
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile  # type: ignore[import-untyped]

from rtflow.audio.files import BYTES_PER_SECOND, SAMPLE_RATES, encode_for_session
from rtflow.errors import InvalidRequestError, ServerError
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider, RealtimeSession
from rtflow.sim import SimConfig, SimServer
from rtflow.sim.audio import synthesize_word

CLIPS = Path(__file__).resolve().parents[2] / "flows" / "clips"
FORMATS = pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw", "g711_alaw"])
DIALECTS = pytest.mark.parametrize("dialect", ["ga", "beta"])


def _provider(sim: SimServer, dialect: str, audio_format: str = "pcm16", **config: Any) -> RealtimeProvider:
    settings = {
        "api_base_url": sim.http_base_url,
        "api_key": "sk-sim",
        "dialect": dialect,
        "modalities": ["audio"],
        "input_audio_format": audio_format,
        "output_audio_format": audio_format,
        "input_audio_transcription": {"model": "whisper-1"},
        **config,
    }
    return RealtimeProvider(ProviderInfo(id="openai:realtime:gpt-realtime", label="voice", config=settings))


def _voice_request(clip: Path, question: str, artifacts: Path, history: list[Message] | None = None) -> TurnRequest:
    messages = [*(history or []), Message.of("user", question)]
    return TurnRequest(
        conversation_id="voice",
        turn_index=len(messages) // 2,
        messages=messages,
        vars={"audio": str(clip), "question": question},
        artifact_dir=str(artifacts),
    )


def _client_events(sim: SimServer, event_type: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in sim.events if e["dir"] == "in" and e["type"] == event_type]


def _server_events(sim: SimServer, *event_types: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in sim.events if e["dir"] == "out" and e["type"] in event_types]


def _saved_audio(output: TurnOutput) -> bytes:
    assert output.audio is not None
    if output.audio.format == "wav":
        with wave.open(output.audio.file, "rb") as reader:
            assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (24_000, 1, 2)
            return reader.readframes(reader.getnframes())
    return Path(output.audio.file).read_bytes()


@DIALECTS
@FORMATS
@pytest.mark.anyio
async def test_audio_in_transcript_and_audio_out(dialect: str, audio_format: str, tmp_path: Path) -> None:
    """The clip arrives converted and chunked; the reply audio saved is exactly what the simulator synthesised."""
    clip = CLIPS / "q1.wav"
    async with SimServer(SimConfig(record_events=True)) as sim:
        session = _provider(sim, dialect, audio_format, audio_chunk_ms=100).session("voice")
        output = await session.send(_voice_request(clip, "What is the capital of France?", tmp_path))
        await session.aclose()

    expected_input = encode_for_session(clip, audio_format)
    appends = _client_events(sim, "input_audio_buffer.append")
    assert b"".join(base64.b64decode(event["audio"]) for event in appends) == expected_input
    assert len(appends) == math.ceil(len(expected_input) / (BYTES_PER_SECOND[audio_format] // 10))
    # The audio replaced the rendered question: no text item carries it.
    assert not any("capital" in str(event) for event in _client_events(sim, "conversation.item.create"))

    assert output.input_transcript == "audio of 1.50 seconds"
    assert output.text == 'You said: "audio of 1.50 seconds" (user messages: 1, instructions: none)'

    delta_type = "response.audio.delta" if dialect == "beta" else "response.output_audio.delta"
    sent = b"".join(base64.b64decode(event["delta"]) for event in _server_events(sim, delta_type))
    synthesised = b"".join(base64.b64decode(synthesize_word(word, audio_format)) for word in output.text.split(" "))
    saved = _saved_audio(output)
    assert saved == sent == synthesised
    assert output.audio is not None
    assert output.audio.sample_rate == SAMPLE_RATES[audio_format]
    assert output.audio.duration_s == pytest.approx(len(sent) / BYTES_PER_SECOND[audio_format])
    assert output.metrics.output_audio_s == pytest.approx(output.audio.duration_s)
    assert output.metrics.input_audio_s == pytest.approx(1.5)
    assert output.metrics.first_audio_ms is not None and output.metrics.real_time_factor is not None
    if audio_format != "pcm16":
        assert output.audio.wav_file is not None
        info = soundfile.info(output.audio.wav_file)
        assert (info.samplerate, info.frames) == (8_000, len(sent))


@pytest.mark.anyio
async def test_second_voice_turn_reuses_the_session(tmp_path: Path) -> None:
    """A follow-up voice turn goes on the same socket: the server holds both spoken turns."""
    async with SimServer(SimConfig(record_events=True)) as sim:
        session = _provider(sim, "ga").session("voice")
        first = await session.send(_voice_request(CLIPS / "q1.wav", "What is the capital of France?", tmp_path))
        history = [Message.of("user", "What is the capital of France?"), Message.of("assistant", first.text)]
        second = await session.send(
            _voice_request(CLIPS / "q2.wav", "And how many people live there?", tmp_path, history)
        )
        await session.aclose()
    assert second.metrics.connect_ms is None  # no reconnect, no replay
    assert second.text == 'You said: "audio of 1.25 seconds" (user messages: 2, instructions: none)'
    assert len([e for e in sim.events if e["type"] == "<connect>"]) == 1
    assert len(_client_events(sim, "input_audio_buffer.commit")) == 2


@DIALECTS
@pytest.mark.anyio
async def test_input_under_100ms_is_a_clear_turn_error(dialect: str, tmp_path: Path) -> None:
    """A 50 ms clip is refused at commit: an InvalidRequestError naming the file, its length and the code."""
    clip = tmp_path / "blip.wav"
    soundfile.write(str(clip), np.full(800, 0.3), 16_000, subtype="PCM_16")
    async with SimServer(SimConfig(record_events=True)) as sim:
        session = _provider(sim, dialect).session("voice")
        with pytest.raises(InvalidRequestError) as caught:
            await session.send(_voice_request(clip, "hm", tmp_path))
        await session.aclose()
    error = caught.value
    assert error.code == "input_audio_buffer_commit_empty" and not error.retryable
    assert "blip.wav" in str(error) and "50 ms" in str(error) and "at least 100 ms" in str(error)
    assert _client_events(sim, "response.create") == []  # no response was asked for after the refusal


@DIALECTS
@pytest.mark.anyio
async def test_server_vad_ends_the_turn_and_answers(dialect: str, tmp_path: Path) -> None:
    """With server_vad the client never commits nor asks: the simulator's VAD does both, twice on one socket."""
    vad = {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 300}
    async with SimServer(SimConfig(record_events=True)) as sim:
        session = _provider(sim, dialect, turn_detection=vad, audio_chunk_ms=50).session("voice")
        first = await session.send(_voice_request(CLIPS / "q1.wav", "What is the capital of France?", tmp_path))
        history = [Message.of("user", "What is the capital of France?"), Message.of("assistant", first.text)]
        second = await session.send(_voice_request(CLIPS / "q3.wav", "And then?", tmp_path, history))
        await session.aclose()
    assert _client_events(sim, "input_audio_buffer.commit") == []
    assert _client_events(sim, "response.create") == []
    assert len(_client_events(sim, "input_audio_buffer.clear")) == 2
    order = [e["type"] for e in sim.events if e["dir"] == "out" and e["type"].startswith("input_audio_buffer.")]
    assert order[:4] == [
        "input_audio_buffer.cleared",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    heard = [e["transcript"] for e in _server_events(sim, "conversation.item.input_audio_transcription.completed")]
    assert [first.input_transcript, second.input_transcript] == heard
    # The VAD commits the speech and the silence it waited for: each clip plus up to ~0.3 s, nothing left over.
    for transcript, seconds in zip(heard, (1.5, 1.0), strict=True):
        assert seconds <= float(transcript.split()[2]) <= seconds + 0.45
    assert second.text.endswith("(user messages: 2, instructions: none)")
    assert first.metrics.first_audio_ms is not None and first.audio is not None


@pytest.mark.anyio
async def test_paced_input_takes_the_clips_duration(tmp_path: Path) -> None:
    """With realtime_pacing the audio is not sent faster than it plays (a lower bound only: not a timing test)."""
    clip = tmp_path / "short.wav"
    soundfile.write(str(clip), 0.3 * np.sin(np.arange(7_200) / 5), 24_000, subtype="PCM_16")
    async with SimServer(SimConfig(record_events=True)) as sim:
        session = _provider(sim, "ga", realtime_pacing=True, audio_chunk_ms=50).session("voice")
        output = await session.send(_voice_request(clip, "paced", tmp_path))
        await session.aclose()
    assert output.metrics.input_send_ms is not None and output.metrics.input_send_ms >= 0.9 * 300
    assert len(_client_events(sim, "input_audio_buffer.append")) == 6
    assert output.input_transcript == "audio of 0.30 seconds"


@pytest.mark.anyio
async def test_failure_after_transcription_carries_what_was_heard(tmp_path: Path) -> None:
    """When the response fails after the transcription arrived, the error holds the transcript for a fallback."""
    from rtflow.sim.config import parse_fault

    async with SimServer(SimConfig(faults=[parse_fault("server_error@realtime")])) as sim:
        session: RealtimeSession = _provider(sim, "ga").session("voice")
        with pytest.raises(ServerError) as caught:
            await session.send(_voice_request(CLIPS / "q1.wav", "What is the capital of France?", tmp_path))
        await session.aclose()
    assert caught.value.input_transcript == "audio of 1.50 seconds"
