"""`POST /v1/audio/speech`: OpenAI's text to speech, spoken with the simulator's word tones.

The body is OpenAI's: `{model, input, voice, response_format?, speed?, instructions?, stream_format?}`, with the
key checked as on Chat. The input's whitespace-separated words become the tones of `rtflow.sim.audio` (pcm16,
24 kHz mono), so the same text always gives the same bytes and lasts the sum of its words' durations.

- `response_format`: `wav` (RIFF, 24 kHz mono 16-bit; also when absent, where OpenAI would make mp3) or `pcm`
  (raw 24 kHz 16-bit little-endian). `mp3`, `opus`, `aac` and `flac` get a 400 naming `response_format`: the
  simulator has no encoder for them, and silently sending WAV instead would hide that.
- `speed` (0.25-4.0, default 1) divides each word's tone and gap; the pitch stays.
- `instructions` and `voice` are checked for type and otherwise change nothing; `stream_format` `sse` is refused.

The audio streams one word per chunk (the WAV header rides with the first), after the first-delta latency and with
the per-delta latency between words. Every request is logged under endpoint `speech` (connection `speech-N`): `in`
the JSON body, `out` a summary with the audio's byte count, never the audio.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rtflow.audio.formats import API_SAMPLE_RATE
from rtflow.sim.audio import word_audio
from rtflow.sim.chat import error_body, fault_response, key_refusal, openai_error
from rtflow.sim.runtime import SimRuntime

__all__ = [
    "MADE_FORMATS",
    "SpeechRequest",
    "SpeechRequestError",
    "parse_speech_request",
    "speech",
    "speech_pcm16",
    "wav_bytes",
]

OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
"""Every `response_format` OpenAI accepts."""
MADE_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm"}
"""The formats the simulator can make, with their content types."""
MAX_INPUT_CHARS = 4096
MIN_SPEED, MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True)
class SpeechRequest:
    """A validated text-to-speech request."""

    model: str
    voice: str
    text: str
    response_format: str
    speed: float


class SpeechRequestError(Exception):
    """Why a request is refused with 400, in OpenAI's terms: a message, the parameter at fault and a code."""

    def __init__(self, message: str, param: str, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse_speech_request(body: dict[str, Any]) -> SpeechRequest:
    """The request in `body`, or SpeechRequestError for the first parameter OpenAI would refuse."""
    return SpeechRequest(
        model=_model(body),
        voice=_voice(body),
        text=_input_text(body),
        response_format=_response_format(body),
        speed=_speed(body),
    )


def _type_name(value: Any) -> str:
    """The JSON name of a value's type, as OpenAI's messages give it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else "a string"


def _required_string(body: dict[str, Any], name: str) -> str:
    """A required string parameter: present, and a string."""
    if name not in body or body[name] is None:
        raise SpeechRequestError(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    value = body[name]
    if not isinstance(value, str):
        raise SpeechRequestError(
            f"Invalid type for '{name}': expected a string, but got {_type_name(value)} instead.", name, "invalid_type"
        )
    return value


def _model(body: dict[str, Any]) -> str:
    """The model's name: any, but not empty, as on Chat (it is what `model=` faults are matched against)."""
    model = _required_string(body, "model")
    if not model:
        raise SpeechRequestError("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    return model


def _input_text(body: dict[str, Any]) -> str:
    """The text to speak: not empty (a blank text would make no audio at all) and at most 4096 characters."""
    text = _required_string(body, "input")
    if not text.strip():
        raise SpeechRequestError(
            "Invalid 'input': empty string. Expected a string with minimum length 1, but got an empty string instead.",
            "input",
            "empty_string",
        )
    if len(text) > MAX_INPUT_CHARS:
        raise SpeechRequestError(
            f"Invalid 'input': string too long. Expected a string with maximum length {MAX_INPUT_CHARS}, "
            f"but got a string with length {len(text)} instead.",
            "input",
            "string_above_max_length",
        )
    return text


def _voice(body: dict[str, Any]) -> str:
    """The voice's name, or a custom voice's id: required, though every voice sounds the same here."""
    value = body.get("voice")
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return _required_string(body, "voice")


def _response_format(body: dict[str, Any]) -> str:
    """The audio format: one the simulator can make (wav when absent)."""
    value = body.get("response_format")
    if value is None:
        return "wav"
    if value not in OPENAI_FORMATS:
        supported = ", ".join(f"'{name}'" for name in OPENAI_FORMATS[:-1]) + f", and '{OPENAI_FORMATS[-1]}'"
        raise SpeechRequestError(
            f"Invalid value: {json.dumps(value)}. Supported values are: {supported}.",
            "response_format",
            "invalid_value",
        )
    if value not in MADE_FORMATS:
        raise SpeechRequestError(
            f"The simulator cannot make '{value}' audio: it makes only 'wav' (24 kHz mono 16-bit) and 'pcm' "
            "(raw 24 kHz 16-bit little-endian). Ask for one of those.",
            "response_format",
            None,
        )
    return str(value)


def _speed(body: dict[str, Any]) -> float:
    """The speaking speed, 0.25 to 4.0 as OpenAI allows (1.0 when absent)."""
    value = body.get("speed")
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpeechRequestError(
            f"Invalid type for 'speed': expected a decimal, but got {_type_name(value)} instead.",
            "speed",
            "invalid_type",
        )
    if value < MIN_SPEED:
        raise SpeechRequestError(
            f"Invalid 'speed': decimal below minimum value. Expected a value >= {MIN_SPEED}, but got {value} instead.",
            "speed",
            "decimal_below_min_value",
        )
    if value > MAX_SPEED:
        raise SpeechRequestError(
            f"Invalid 'speed': decimal above maximum value. Expected a value <= {MAX_SPEED}, but got {value} instead.",
            "speed",
            "decimal_above_max_value",
        )
    return float(value)


def _check_options(body: dict[str, Any]) -> None:
    """The parameters that change nothing here still have to be well formed, as OpenAI would insist."""
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise SpeechRequestError(
            f"Invalid type for 'instructions': expected a string, but got {_type_name(instructions)} instead.",
            "instructions",
            "invalid_type",
        )
    stream_format = body.get("stream_format")
    if stream_format == "sse":
        raise SpeechRequestError(
            "The simulator streams raw audio only: stream_format 'sse' is not supported (use 'audio').",
            "stream_format",
            None,
        )
    if stream_format not in (None, "audio"):
        raise SpeechRequestError(
            f"Invalid value: {json.dumps(stream_format)}. Supported values are: 'sse' and 'audio'.",
            "stream_format",
            "invalid_value",
        )


def speech_pcm16(text: str, speed: float = 1.0) -> list[bytes]:
    """The pcm16 24 kHz audio of each whitespace-separated word of `text`, in order (one piece per word)."""
    return [word_audio(word, "pcm16", speed) for word in text.split()]


def wav_bytes(pcm: bytes) -> bytes:
    """pcm16 24 kHz mono samples in a RIFF WAV, written by the standard library's `wave` so the header is right."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(API_SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


def _pieces(response_format: str, words: list[bytes]) -> list[bytes]:
    """The body, one chunk per word; a WAV's header goes with the first word, so the file is whole once sent."""
    if response_format != "wav":
        return words
    pcm = b"".join(words)
    header = wav_bytes(pcm)[: -len(pcm)]
    return [header + words[0], *words[1:]]


async def _body(runtime: SimRuntime, pieces: list[bytes], drop: Callable[[], object] | None) -> AsyncIterator[bytes]:
    """The audio as it streams: first-delta latency, then a word per chunk with per-delta latency between them."""
    await runtime.latency.first_delta()
    for position, piece in enumerate(pieces):
        if position:
            await runtime.latency.per_delta()
        yield piece
        if drop is not None:
            # Drop the TCP connection after the first word, as a dying proxy would.
            drop()
            await anyio.sleep_forever()


def _summary(request: SpeechRequest, words: list[bytes], pieces: list[bytes]) -> dict[str, Any]:
    """What the `out` log record says of the audio: its size and length, not its bytes."""
    samples = sum(len(word) for word in words) // 2
    return {
        "model": request.model,
        "voice": request.voice,
        "response_format": request.response_format,
        "content_type": MADE_FORMATS[request.response_format],
        "speed": request.speed,
        "words": len(words),
        "bytes": sum(len(piece) for piece in pieces),
        "duration_ms": round(samples * 1000 / API_SAMPLE_RATE, 3),
    }


async def speech(request: Request, runtime: SimRuntime, key: str | None, abort: Callable[[], object]) -> Response:
    """Answer one text-to-speech request."""
    conn_id = runtime.next_connection_id("speech")
    refusal = key_refusal(runtime, key)
    if refusal is not None:
        return refusal
    try:
        body = json.loads(await request.body())
    except ValueError:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
    if not isinstance(body, dict):
        return openai_error(400, "The body of your request must be a JSON object.", "invalid_request_error", None)
    log = runtime.log if runtime.log.enabled else None
    if log is not None:
        log.record(conn_id, "in", "speech", "audio.speech.request", body)
    try:
        parsed = parse_speech_request(body)
        _check_options(body)
    except SpeechRequestError as problem:
        refused = error_body(problem.message, "invalid_request_error", problem.code, problem.param)
        if log is not None:
            log.record(conn_id, "out", "speech", "http.400", refused)
        return JSONResponse(refused, status_code=400)
    await runtime.latency.connect()
    fault = runtime.faults.pick_response("speech", parsed.model, parsed.text)
    if fault is not None:
        failure = await fault_response(fault.kind, fault.status, fault.retry_after)
        if failure is not None:
            if log is not None:
                log.record(conn_id, "out", "speech", f"http.{failure.status_code}", fault.kind)
            return failure
    words = speech_pcm16(parsed.text, parsed.speed)
    pieces = _pieces(parsed.response_format, words)
    if log is not None:
        log.record(conn_id, "out", "speech", "audio.speech", _summary(parsed, words, pieces))
    if fault is not None and fault.kind == "malformed":
        return Response('{"error": {"message": "', media_type="application/json")
    drop = abort if fault is not None and fault.kind == "close" else None
    return StreamingResponse(_body(runtime, pieces, drop), media_type=MADE_FORMATS[parsed.response_format])
