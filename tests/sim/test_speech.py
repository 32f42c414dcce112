"""`POST /v1/audio/speech`: the simulator's text to speech, from the official client and from plain httpx."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import soundfile
from openai import AsyncOpenAI

from rtflow.sim import Fault, SimServer, parse_fault
from rtflow.sim.audio import synthesize_word

from .conftest import HEADERS, simulator

pytestmark = pytest.mark.anyio


def word_samples(text: str, speed: float = 1.0) -> int:
    """How many samples the words of `text` take, computed from the word synthesis directly."""
    return sum(len(base64.b64decode(synthesize_word(word, "pcm16", speed))) // 2 for word in text.split())


async def post_speech(sim: SimServer, body: dict[str, Any], headers: dict[str, str] = HEADERS) -> httpx.Response:
    """One speech request from a plain client."""
    async with httpx.AsyncClient() as http:
        return await http.post(f"{sim.http_base_url}/audio/speech", json=body, headers=headers)


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[AsyncOpenAI]:
    """The official client pointed at the simulator."""
    async with AsyncOpenAI(api_key="sk-test", base_url=sim.http_base_url) as c:
        yield c


async def test_official_client_wav(sim: SimServer, client: AsyncOpenAI) -> None:
    """The official client gets a 24 kHz mono 16-bit WAV lasting exactly the words' durations."""
    response = await client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input="hello there", response_format="wav"
    )
    data = response.content
    info = soundfile.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24_000, 1, "PCM_16", "WAV")
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert rate == 24_000 and samples.ndim == 1
    assert len(samples) == word_samples("hello there")
    expected = b"".join(base64.b64decode(synthesize_word(word, "pcm16")) for word in ("hello", "there"))
    assert samples.astype("<i2").tobytes() == expected
    assert response.response.headers["content-type"] == "audio/wav"


async def test_pcm_is_the_raw_words(sim: SimServer) -> None:
    """`pcm` is the raw 16-bit little-endian samples of the words, nothing else."""
    response = await post_speech(
        sim, {"model": "tts-1", "voice": "nova", "input": "One two, three!", "response_format": "pcm"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "audio/pcm"
    words = ["One", "two,", "three!"]
    assert response.content == b"".join(base64.b64decode(synthesize_word(word, "pcm16")) for word in words)


async def test_default_format_is_wav(sim: SimServer) -> None:
    """Without `response_format` the simulator answers WAV (OpenAI's mp3 default is a format it cannot make)."""
    response = await post_speech(sim, {"model": "tts-1", "voice": "alloy", "input": "hi"})
    assert response.status_code == 200 and response.content[:4] == b"RIFF"


@pytest.mark.parametrize("speed", [2.0, 0.5])
async def test_speed_scales_duration(sim: SimServer, speed: float) -> None:
    """`speed` 2.0 halves the duration (0.5 doubles it), within a few ms; the pitch of each word is kept."""
    text = "the quick brown fox jumps over the lazy dog"
    body = {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": text, "response_format": "pcm"}
    normal = await post_speech(sim, body)
    scaled = await post_speech(sim, {**body, "speed": speed})
    normal_s, scaled_s = len(normal.content) / 48_000, len(scaled.content) / 48_000
    assert abs(scaled_s - normal_s / speed) < 0.005
    assert len(scaled.content) // 2 == word_samples(text, speed)


def dominant_hz(pcm: bytes) -> float:
    """The strongest frequency of a stretch of pcm16 24 kHz audio."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / 24_000)[int(np.argmax(spectrum))])


def test_speed_keeps_pitch() -> None:
    """A faster word is shorter, not higher."""
    normal = base64.b64decode(synthesize_word("parking", "pcm16"))
    fast = base64.b64decode(synthesize_word("parking", "pcm16", 2.0))
    assert abs(dominant_hz(normal[:4000]) - dominant_hz(fast[:4000])) < 10


def refusal(response: httpx.Response, param: str) -> str:
    """Check an OpenAI-shaped 400 naming `param`; return its message."""
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    return str(error["message"])


@pytest.mark.parametrize("audio_format", ["mp3", "opus", "aac", "flac"])
async def test_formats_it_cannot_make(sim: SimServer, audio_format: str) -> None:
    """mp3, opus, aac and flac get a 400 on `response_format`, code null, naming the formats it can make."""
    response = await post_speech(
        sim, {"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": audio_format}
    )
    message = refusal(response, "response_format")
    assert response.json()["error"]["code"] is None
    assert audio_format in message and "'wav'" in message and "'pcm'" in message


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"speed": 0.2}, "speed"),
        ({"speed": 4.5}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"input": ""}, "input"),
        ({"input": "   "}, "input"),
        ({"input": None}, "input"),
        ({"input": "x" * 4097}, "input"),
        ({"voice": None}, "voice"),
        ({"model": None}, "model"),
        ({"model": ""}, "model"),
        ({"voice": {"name": "x"}}, "voice"),
        ({"response_format": "ogg"}, "response_format"),
        ({"stream_format": "sse"}, "stream_format"),
        ({"instructions": 3}, "instructions"),
    ],
)
async def test_invalid_requests(sim: SimServer, change: dict[str, Any], param: str) -> None:
    """Each invalid parameter gets a 400 that names it; nothing is spoken."""
    body = {"model": "tts-1", "voice": "alloy", "input": "hi", **change}
    refusal(await post_speech(sim, {k: v for k, v in body.items() if v is not None}), param)
    assert not [e for e in sim.events if e["type"] == "audio.speech"]


async def test_speed_limits_are_inclusive(sim: SimServer) -> None:
    """0.25 and 4.0 themselves are accepted, as OpenAI accepts them."""
    for speed in (0.25, 4.0):
        response = await post_speech(sim, {"model": "tts-1", "voice": "alloy", "input": "hi", "speed": speed})
        assert response.status_code == 200


async def test_official_client_sees_bad_request(client: AsyncOpenAI) -> None:
    """The official client raises BadRequestError with the simulator's explanation."""
    with pytest.raises(openai.BadRequestError) as refused:
        await client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="mp3")
    assert refused.value.param == "response_format"


async def test_keys_are_checked() -> None:
    """No key, or another key than `require_key`, is refused with 401; the Azure path with `api-key` works."""
    async with simulator(require_key="sk-right") as sim:
        body = {"model": "tts-1", "voice": "alloy", "input": "hi"}
        assert (await post_speech(sim, body, {})).status_code == 401
        assert (await post_speech(sim, body, HEADERS)).status_code == 401
        async with httpx.AsyncClient() as http:
            azure = await http.post(
                f"http://127.0.0.1:{sim.port}/openai/deployments/tts/audio/speech",
                json=body,
                headers={"api-key": "sk-right"},
            )
        assert azure.status_code == 200 and azure.content[:4] == b"RIFF"


async def test_event_log_counts_bytes(sim: SimServer) -> None:
    """The request is logged in and out under endpoint `speech`; the out record has the byte count, not the audio."""
    body = {"model": "tts-1", "voice": "alloy", "input": "hello there", "response_format": "wav", "speed": 1.5}
    response = await post_speech(sim, body)
    records = [e for e in sim.events if e["endpoint"] == "speech"]
    assert [(e["dir"], e["type"]) for e in records] == [("in", "audio.speech.request"), ("out", "audio.speech")]
    assert records[0]["payload"] == body and records[0]["conn"].startswith("speech-")
    out = records[1]["payload"]
    assert out["bytes"] == len(response.content) and out["words"] == 2 and out["content_type"] == "audio/wav"
    assert out["duration_ms"] == pytest.approx(word_samples("hello there", 1.5) / 24, abs=0.001)


async def test_faults_on_speech() -> None:
    """Faults aimed at `speech` hit it and leave Chat alone; `match` reads the input text."""
    faults = [Fault(kind="rate_limited", endpoint="speech", match="busy"), parse_fault("status:503@speechx1")]
    async with simulator(*faults) as sim:
        body = {"model": "tts-1", "voice": "alloy", "input": "are you busy"}
        limited = await post_speech(sim, body)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        assert (await post_speech(sim, {**body, "input": "hello"})).status_code == 503
        assert (await post_speech(sim, {**body, "input": "hello"})).status_code == 200
        async with httpx.AsyncClient() as http:
            chat = await http.post(
                f"{sim.http_base_url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "busy"}]},
                headers=HEADERS,
            )
        assert chat.status_code == 200


async def test_close_fault_drops_mid_body() -> None:
    """A `close` fault on speech drops the connection after the first word's audio."""
    async with simulator(Fault(kind="close", endpoint="speech")) as sim:
        with pytest.raises(httpx.RemoteProtocolError):
            await post_speech(sim, {"model": "tts-1", "voice": "alloy", "input": "one two three"})


async def test_malformed_fault_is_not_audio() -> None:
    """A `malformed` fault answers a cut JSON fragment instead of audio."""
    async with simulator(Fault(kind="malformed", endpoint="speech")) as sim:
        response = await post_speech(sim, {"model": "tts-1", "voice": "alloy", "input": "one two"})
        assert response.status_code == 200 and not response.content.startswith(b"RIFF")
        with pytest.raises(soundfile.LibsndfileError):
            soundfile.info(io.BytesIO(response.content))
