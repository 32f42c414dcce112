"""The text-to-speech provider (`openai:tts:MODEL`) against the simulator's `/v1/audio/speech`, and its edges."""

from __future__ import annotations

import base64
import json
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile

from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConfigError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
)
from rtflow.messages import Message, TurnOutput, TurnRequest
from rtflow.providers import registry
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_tts import TtsProvider
from rtflow.sim import Fault, SimConfig, SimServer
from rtflow.sim.audio import synthesize_word

pytestmark = pytest.mark.anyio

MODEL_ID = "openai:tts:gpt-4o-mini-tts"
TEXT = "Hello there, I would like to change my booking please"


def word_samples(text: str, speed: float = 1.0) -> int:
    """How many samples the simulator speaks `text` in: the sum of its words' tones and gaps."""
    return sum(len(base64.b64decode(synthesize_word(word, "pcm16", speed))) // 2 for word in text.split())


def tts(sim: SimServer | None = None, **config: Any) -> TtsProvider:
    """A speech provider pointed at the simulator (or at nothing, for config tests)."""
    base = {"api_base_url": sim.http_base_url, "api_key": "sk-sim"} if sim is not None else {}
    return TtsProvider(ProviderInfo(id=MODEL_ID, label="caller-voice", config={**base, **config}))


def turn(
    text: str = TEXT, artifact_dir: Path | None = None, conversation_id: str = "c1", index: int = 0
) -> TurnRequest:
    """A turn whose last user message is `text`, after a system message and an earlier exchange."""
    messages = [
        Message.of("system", "You are a caller."),
        Message.of("user", "first words"),
        Message.of("assistant", "How can I help?"),
        Message.of("user", text),
    ]
    return TurnRequest(
        conversation_id=conversation_id,
        turn_index=index,
        messages=messages,
        artifact_dir=str(artifact_dir) if artifact_dir is not None else None,
    )


def frames_of(output: TurnOutput) -> int:
    """The frame count of the written file, read back with soundfile; checks it is 24 kHz mono 16-bit."""
    assert output.audio is not None
    info = soundfile.info(output.audio.file)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24_000, 1, "PCM_16", "WAV")
    return int(info.frames)


@pytest.mark.parametrize("audio_format", ["wav", "pcm"])
async def test_speech_is_written_as_the_simulator_made_it(tmp_path: Path, audio_format: str) -> None:
    """wav and pcm both become a 24 kHz WAV lasting exactly the simulator's words; the text is the output text."""
    async with SimServer(SimConfig()) as sim:
        provider = tts(sim, response_format=audio_format)
        session = provider.session("c1")
        output = await session.send(turn(artifact_dir=tmp_path))
        await session.aclose()
        await provider.aclose()
    expected = word_samples(TEXT)
    assert frames_of(output) == expected
    audio = output.audio
    assert audio is not None
    assert audio.format == "wav" and audio.sample_rate == 24_000
    assert audio.duration_s == pytest.approx(expected / 24_000)
    assert audio.byte_count == 2 * expected
    assert Path(audio.file).parent == tmp_path and Path(audio.file).exists()  # in the artifact dir: kept after aclose
    assert Path(audio.file).name == "c1-turn1-speech.wav"
    samples, _ = soundfile.read(audio.file, dtype="int16")
    spoken = b"".join(base64.b64decode(synthesize_word(word, "pcm16")) for word in TEXT.split())
    assert samples.astype("<i2").tobytes() == spoken
    assert output.text == TEXT
    assert output.model == "gpt-4o-mini-tts" and output.cost is None
    assert output.metrics.first_audio_ms is not None and output.metrics.total_ms is not None
    assert 0 < output.metrics.first_audio_ms <= output.metrics.total_ms


async def test_speed_two_halves_the_duration(tmp_path: Path) -> None:
    """At speed 2.0 each word's tone and gap take half as long, so the whole does too."""
    async with SimServer(SimConfig()) as sim:
        normal = tts(sim)
        fast = tts(sim, speed=2.0)
        slow_output = await normal.session("s").send(turn(artifact_dir=tmp_path / "normal"))
        fast_output = await fast.session("s").send(turn(artifact_dir=tmp_path / "fast"))
        await normal.aclose()
        await fast.aclose()
    assert frames_of(fast_output) == word_samples(TEXT, 2.0)
    assert slow_output.audio is not None and fast_output.audio is not None
    words = len(TEXT.split())
    # Each word is cut to whole samples on its own, so the halves may differ by a sample per word.
    assert abs(fast_output.audio.duration_s - slow_output.audio.duration_s / 2) <= words / 24_000


async def test_request_body_carries_the_voice_settings() -> None:
    """model, input, a custom voice id, the format, speed and instructions reach the server as OpenAI names them."""
    async with SimServer(SimConfig(record_events=True)) as sim:
        provider = tts(sim, voice={"id": "voice_123"}, speed=1.25, instructions="Sound tired.", response_format="pcm")
        await provider.session("b").send(turn("Just two"))
        await provider.aclose()
        sent = [entry["payload"] for entry in sim.events if entry["dir"] == "in" and entry["endpoint"] == "speech"]
    assert sent == [
        {
            "model": "gpt-4o-mini-tts",
            "input": "Just two",
            "voice": {"id": "voice_123"},
            "response_format": "pcm",
            "speed": 1.25,
            "instructions": "Sound tired.",
        }
    ]


async def test_without_artifact_dir_the_audio_lives_as_long_as_the_provider() -> None:
    """With no artifact_dir the file goes to a scratch folder that `aclose` removes."""
    async with SimServer(SimConfig()) as sim:
        provider = tts(sim)
        output = await provider.session("t").send(turn("short one"))
        assert output.audio is not None
        written = Path(output.audio.file)
        assert written.exists()
        await provider.aclose()
    assert not written.exists() and not written.parent.exists()


async def test_file_name_is_safe_for_any_conversation_id(tmp_path: Path) -> None:
    """An id with separators or great length still gives one file directly in the artifact dir."""
    async with SimServer(SimConfig()) as sim:
        provider = tts(sim)
        odd = await provider.session("x").send(turn("hi", tmp_path, conversation_id="../up/and out", index=2))
        long = await provider.session("y").send(turn("hi", tmp_path, conversation_id="thread-" * 60))
        await provider.aclose()
    assert odd.audio is not None and long.audio is not None
    assert Path(odd.audio.file) == tmp_path / ".._up_and_out-turn3-speech.wav"
    assert Path(long.audio.file).parent == tmp_path and len(Path(long.audio.file).name) < 120


@pytest.mark.parametrize("audio_format", ["mp3", "opus", "aac", "flac", "ogg"])
def test_formats_rtflow_cannot_read_are_refused_at_config(audio_format: str) -> None:
    """Only wav and pcm can be read without a decoder: anything else fails validation, saying why."""
    with pytest.raises(ProviderConfigError) as refused:
        tts(response_format=audio_format)
    message = str(refused.value)
    assert "caller-voice" in message and "response_format" in message and "'wav' or 'pcm'" in message
    if audio_format != "ogg":
        assert "decoder" in message


@pytest.mark.parametrize(
    ("config", "key"),
    [({"speed": 5}, "speed"), ({"speed": 0.1}, "speed"), ({"tools": []}, "tools"), ({"timeout": "soon"}, "timeout")],
)
def test_bad_config_is_refused(config: dict[str, Any], key: str) -> None:
    """Out-of-range speed, a key this provider has no use for, and a bad duration are config errors."""
    with pytest.raises(ProviderConfigError) as refused:
        tts(**config)
    assert key in str(refused.value)


def test_registry_builds_it_and_reads_its_settings() -> None:
    """`openai:tts:MODEL` is a built-in kind; camelCase, case-insensitive formats and durations are understood."""
    assert "openai:tts" in registry.known_kinds()
    provider = registry.create_provider(
        ProviderInfo(
            id=MODEL_ID,
            label="voice",
            config={
                "apiBaseUrl": "http://127.0.0.1:1/v1",
                "responseFormat": "PCM",
                "timeout": "2s",
                "maxConcurrency": 3,
            },
        )
    )
    assert isinstance(provider, TtsProvider)
    assert provider.config.response_format == "pcm" and provider.config.timeout == 2.0
    assert provider.config.voice == "alloy" and provider.config.speed == 1.0
    assert provider.max_concurrency == 3 and not provider.holds_sessions
    assert provider.concurrency_key == "http://127.0.0.1:1/v1/audio/speech#gpt-4o-mini-tts"


def test_instructions_on_tts_1_are_warned_about() -> None:
    """tts-1 ignores instructions; saying so beats a voice that silently sounds the same."""
    provider = TtsProvider(ProviderInfo(id="openai:tts:tts-1", label="v", config={"instructions": "whisper"}))
    assert any("ignores `instructions`" in warning for warning in provider.warnings())
    assert tts(instructions="whisper").warnings() == []


async def test_wrong_key_is_an_authentication_error_that_names_no_key() -> None:
    """The simulator's 401 becomes AuthenticationError naming where the key came from, never the key."""
    wrong = "sk-wrong-key-value-0123456789"
    async with SimServer(SimConfig(require_key="sk-right")) as sim:
        provider = tts(sim, api_key=wrong)
        with pytest.raises(AuthenticationError) as refused:
            await provider.session("k").send(turn())
        right = tts(sim, api_key="sk-right")
        assert (await right.session("k").send(turn("fine now"))).text == "fine now"
        await provider.aclose()
        await right.aclose()
    assert refused.value.status == 401 and not refused.value.retryable
    assert "config api_key" in str(refused.value) and wrong not in str(refused.value)


async def test_missing_key_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key at all fails `check_ready`, naming the variable to set."""
    provider = TtsProvider(ProviderInfo(id=MODEL_ID, label="v", config={"api_key_env": "TTS_KEY"}))
    monkeypatch.delenv("TTS_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="TTS_KEY"):
        provider.check_ready()


async def test_status_faults_are_translated() -> None:
    """429 is a RateLimitError with its Retry-After, 500 a ServerError, and the next request succeeds."""
    faults = [
        Fault(kind="status", status=429, endpoint="speech", retry_after=2, times=1),
        Fault(kind="status", status=503, endpoint="speech", times=1),
    ]
    async with SimServer(SimConfig(faults=faults)) as sim:
        provider = tts(sim)
        with pytest.raises(RateLimitError) as limited:
            await provider.session("f").send(turn())
        with pytest.raises(ServerError) as failed:
            await provider.session("f").send(turn())
        output = await provider.session("f").send(turn())
        await provider.aclose()
    assert limited.value.retry_after == 2.0 and limited.value.retryable and limited.value.status == 429
    assert failed.value.status == 503 and failed.value.retryable
    assert output.audio is not None and output.audio.duration_s > 0


async def test_too_long_input_is_an_invalid_request() -> None:
    """The server's 400 (input over 4096 characters) is an InvalidRequestError carrying its message."""
    async with SimServer(SimConfig()) as sim:
        provider = tts(sim)
        with pytest.raises(InvalidRequestError) as refused:
            await provider.session("l").send(turn("word " * 1000))
        await provider.aclose()
    assert refused.value.status == 400 and "maximum length 4096" in str(refused.value)


async def test_blank_or_missing_user_text_fails_before_a_request() -> None:
    """There is nothing to speak without a user message with words in it."""
    provider = tts(api_base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(InvalidRequestError, match="blank user message"):
        await provider.session("b").send(turn("   "))
    only_system = TurnRequest(conversation_id="b", turn_index=0, messages=[Message.of("system", "x")])
    with pytest.raises(InvalidRequestError, match="no user message"):
        await provider.session("b").send(only_system)


async def test_stalled_server_hits_the_timeout() -> None:
    """A server that never answers is a retryable ProviderTimeoutError after `timeout`, not a hang."""
    async with SimServer(SimConfig(faults=[Fault(kind="stall", endpoint="speech")])) as sim:
        provider = tts(sim, timeout="300ms")
        started = time.perf_counter()
        with pytest.raises(ProviderTimeoutError) as waited:
            await provider.session("s").send(turn())
        elapsed = time.perf_counter() - started
        await provider.aclose()
    assert 0.25 < elapsed < 5
    assert waited.value.retryable and "0.3 s" in str(waited.value)


async def test_malformed_body_is_a_protocol_error_naming_it() -> None:
    """The simulator's `malformed` fault (a cut JSON fragment) is not audio: the error says it was JSON."""
    async with SimServer(SimConfig(faults=[Fault(kind="malformed", endpoint="speech")])) as sim:
        provider = tts(sim)
        with pytest.raises(ProtocolError) as broken:
            await provider.session("m").send(turn())
        await provider.aclose()
    assert "application/json" in str(broken.value) and "wav audio was expected" in str(broken.value)


def mocked(handler: Any, **config: Any) -> TtsProvider:
    """A provider whose requests `handler` answers, for bodies the simulator never sends."""
    return TtsProvider(
        ProviderInfo(
            id=MODEL_ID, label="v", config={"api_base_url": "https://tts.example/v1", "api_key": "sk-mock", **config}
        ),
        transport=httpx.MockTransport(handler),
    )


def streamed_wav(pcm: bytes) -> bytes:
    """A WAV as OpenAI streams it: RIFF and data sizes left at 0xFFFFFFFF."""
    fmt = struct.pack("<HHIIHH", 1, 1, 24_000, 48_000, 2, 16)
    return b"RIFF" + b"\xff\xff\xff\xff" + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff" + pcm


async def test_streamed_wav_with_placeholder_sizes_is_read(tmp_path: Path) -> None:
    """OpenAI's streamed WAV (sizes 0xFFFFFFFF) is read to its end and written with true sizes."""
    pcm = b"\x01\x00\xff\xff" * 600
    provider = mocked(
        lambda request: httpx.Response(200, content=streamed_wav(pcm), headers={"content-type": "audio/wav"})
    )
    output = await provider.session("w").send(turn("hi", tmp_path))
    await provider.aclose()
    assert frames_of(output) == 1200
    assert output.audio is not None and output.audio.byte_count == len(pcm)


@pytest.mark.parametrize(
    ("content", "content_type", "audio_format", "named"),
    [
        (b"", "audio/wav", "wav", "an empty body"),
        (b'{"error": {"message": "sk-mock is busy"}}', "", "pcm", "no content type"),
        (b"<html>gateway</html>", "text/html", "pcm", "text/html"),
        (b"\x00\x01" * 50, "audio/wav", "wav", "not a WAV file"),
        (streamed_wav(b"")[:-8] + b"fmt ", "audio/wav", "wav", "without a data chunk"),
    ],
)
async def test_bodies_that_are_not_audio(content: bytes, content_type: str, audio_format: str, named: str) -> None:
    """Empty, JSON (even unlabelled), HTML, a wav that is not RIFF: a ProtocolError saying what came, key redacted."""
    headers = {"content-type": content_type} if content_type else {}
    provider = mocked(
        lambda request: httpx.Response(200, content=content, headers=headers), response_format=audio_format
    )
    with pytest.raises(ProtocolError) as broken:
        await provider.session("n").send(turn())
    await provider.aclose()
    assert named in str(broken.value) and "sk-mock" not in str(broken.value)


async def test_wav_in_another_shape_is_refused() -> None:
    """A stereo or 44.1 kHz WAV is not what the API promises; rtflow says so instead of mislabelling it."""
    fmt = struct.pack("<HHIIHH", 1, 2, 44_100, 176_400, 4, 16)
    body = b"RIFF\x00\x00\x00\x00WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 8) + b"\x00" * 8
    provider = mocked(lambda request: httpx.Response(200, content=body, headers={"content-type": "audio/wav"}))
    with pytest.raises(ProtocolError, match="2 channel"):
        await provider.session("n").send(turn())
    await provider.aclose()


async def test_pcm_answered_with_a_wav_is_still_understood(tmp_path: Path) -> None:
    """A server that sends a WAV although pcm was asked for is read as the WAV it is, not as samples."""
    pcm = b"\x10\x00" * 480
    provider = mocked(lambda request: httpx.Response(200, content=streamed_wav(pcm)), response_format="pcm")
    output = await provider.session("p").send(turn("hi", tmp_path))
    await provider.aclose()
    assert frames_of(output) == 480


async def test_redirect_to_another_origin_is_refused() -> None:
    """The key only goes to the configured origin: a redirect elsewhere is refused, not followed."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(307, headers={"location": "https://elsewhere.example/v1/audio/speech"})

    provider = mocked(handler)
    with pytest.raises(InvalidRequestError, match="another origin"):
        await provider.session("r").send(turn())
    await provider.aclose()
    assert seen == ["https://tts.example/v1/audio/speech"]


async def test_error_body_is_redacted() -> None:
    """A server that echoes the key in its error message does not get it into rtflow's error."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=json.dumps({"error": {"message": "bad key sk-mock here"}}).encode())

    provider = mocked(handler)
    with pytest.raises(InvalidRequestError) as refused:
        await provider.session("e").send(turn())
    await provider.aclose()
    assert "sk-mock" not in str(refused.value) and "bad key" in str(refused.value)
