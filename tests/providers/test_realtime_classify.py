"""How the Realtime provider classifies what the server reports, and the audio and price helpers."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from rtflow.audio.files import read_wav_as_pcm16, write_output_audio
from rtflow.errors import (
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ResponseFailedError,
    ServerError,
)
from rtflow.messages import Usage
from rtflow.providers.endpoints import SecretKey
from rtflow.providers.openai_realtime import _translate_errors
from rtflow.providers.pricing import cost_of, price_for
from rtflow.providers.realtime_outcomes import error_from_event, finish_response


def _done(status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "response.done",
        "response": {"id": "r1", "status": status, "status_details": details, "output": []},
    }


@pytest.mark.parametrize(
    ("status", "details", "reason"),
    [
        ("failed", {"type": "failed", "error": {"type": "server_error", "code": "boom", "message": "x"}}, None),
        ("incomplete", {"type": "incomplete", "reason": "max_output_tokens"}, "max_output_tokens"),
        ("cancelled", {"type": "cancelled", "reason": "client_cancelled"}, "client_cancelled"),
    ],
)
def test_unsuccessful_statuses_are_response_failed(status: str, details: dict[str, Any], reason: str | None) -> None:
    """failed / incomplete / cancelled become ResponseFailedError carrying the status and reason."""
    with pytest.raises(ResponseFailedError) as caught:
        finish_response(_done(status, details), "partial", "rt")
    assert caught.value.response_status == status and caught.value.reason == reason
    assert not caught.value.retryable


def test_rate_limited_failure_is_a_rate_limit_error() -> None:
    """A failed response whose error is a rate limit becomes a retryable RateLimitError."""
    details = {"type": "failed", "error": {"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "m"}}
    with pytest.raises(RateLimitError) as caught:
        finish_response(_done("failed", details), "", "rt")
    assert caught.value.retryable and caught.value.code == "rate_limit_exceeded"


def test_completed_response_collects_calls_text_and_usage() -> None:
    """A completed response yields its function calls, text from the output when no deltas came, and usage."""
    event = _done("completed")
    event["response"]["output"] = [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
    ]
    event["response"]["usage"] = {
        "total_tokens": 30,
        "input_tokens": 20,
        "output_tokens": 10,
        "input_token_details": {"cached_tokens": 4, "audio_tokens": 6, "text_tokens": 10},
        "output_token_details": {"audio_tokens": 3, "text_tokens": 7},
    }
    result = finish_response(event, "", "rt")
    assert result.text == "Let me check."
    assert result.calls == [("c1", "get_weather", '{"city":"Oslo"}')]
    assert result.usage == Usage(
        input_tokens=20, output_tokens=10, total_tokens=30, cached_tokens=4, input_audio_tokens=6, output_audio_tokens=3
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "invalid_request_error", "code": "invalid_value", "message": "bad"}, InvalidRequestError),
        ({"type": "server_error", "message": "oops"}, ServerError),
        ({"type": "invalid_request_error", "code": "session_expired", "message": "60 min"}, ProviderConnectionError),
    ],
)
def test_error_events(error: dict[str, Any], expected: type[Exception]) -> None:
    """`error` events map by type and code; session_expired is a retryable connection loss."""
    translated = error_from_event({"type": "error", "error": error}, "rt")
    assert type(translated) is expected
    assert error["message"] in str(translated)


def test_prices() -> None:
    """Known models and their dated snapshots are priced; unknown models get no cost."""
    usage = Usage(input_tokens=1000, output_tokens=500, total_tokens=1500, cached_tokens=200, input_audio_tokens=300)
    assert price_for("gpt-4o-realtime-preview-2024-12-17") == price_for("gpt-4o-realtime-preview")
    expected = (500 * 4.0 + 200 * 0.40 + 300 * 32.0 + 500 * 16.0) / 1e6
    assert cost_of("gpt-realtime", usage) == pytest.approx(expected)
    assert cost_of("my-local-model", usage) is None


@pytest.mark.parametrize(
    ("model", "text_output", "audio_input"),
    [
        ("gpt-realtime-1.5", 16.0, 32.0),
        ("gpt-realtime-2", 24.0, 32.0),
        ("gpt-realtime-2.1", 24.0, 32.0),
        ("gpt-realtime-2.1-mini", 2.40, 10.0),
    ],
)
def test_the_current_realtime_models_are_priced(model: str, text_output: float, audio_input: float) -> None:
    """The 2026 model line has rows of its own (gpt-realtime-2 raised text output to 24), and its dated snapshots
    fall back to them."""
    price = price_for(model)
    assert price is not None and (price.text_output, price.audio_input) == (text_output, audio_input)
    assert price_for(f"{model}-2026-10-01") == price


def test_wav_round_trip_resamples_to_24k_mono(tmp_path: Path) -> None:
    """A 48 kHz stereo file comes out as 24 kHz mono pcm16 of the same duration; output is written as WAV."""
    frames = 48000
    stereo = np.zeros((frames, 2), dtype="<i2")
    stereo[:, 0] = 1000
    stereo[:, 1] = 3000
    with wave.open(str(tmp_path / "in.wav"), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(48000)
        writer.writeframes(stereo.tobytes())
    pcm = read_wav_as_pcm16(tmp_path / "in.wav")
    samples = np.frombuffer(pcm, dtype="<i2")
    assert abs(len(samples) - 24000) <= 2
    assert abs(int(samples[len(samples) // 2]) - 2000) <= 2  # channels averaged
    audio = write_output_audio(pcm, tmp_path / "out", "turn1", "pcm16")
    assert audio.format == "wav" and audio.duration_s == pytest.approx(len(pcm) / 48000)
    raw = write_output_audio(b"\xff" * 8000, tmp_path / "out", "turn2", "g711_ulaw")
    assert raw.format == "pcmu" and raw.duration_s == 1.0 and Path(raw.file).stat().st_size == 8000


def _raise_inside_translator(exc: Exception, key: SecretKey | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught, _translate_errors("rt", lambda: key):
        raise exc
    return caught.value


def test_close_4000_says_to_use_ga() -> None:
    """Close code 4000 (beta_api_shape_disabled) is a fatal InvalidRequestError pointing at the GA dialect."""
    error = _raise_inside_translator(ConnectionClosed(Close(4000, "beta_api_shape_disabled"), None))
    assert isinstance(error, InvalidRequestError) and "dialect: ga" in str(error) and not error.retryable


def test_close_without_frame_is_1006() -> None:
    """A connection lost without a close frame is a retryable connection error with code 1006."""
    error = _raise_inside_translator(ConnectionClosed(None, None))
    assert isinstance(error, ProviderConnectionError) and error.code == "1006" and error.retryable


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [(500, ProviderConnectionError, True), (503, ProviderConnectionError, True), (404, InvalidRequestError, False)],
)
def test_other_handshake_statuses(status: int, expected: type[ProviderError], retryable: bool) -> None:
    """5xx handshakes are retryable connection errors; other refusals are invalid requests."""
    response = Response(status, "x", Headers(), b'{"error": {"message": "sk-secret-in-body"}}')
    error = _raise_inside_translator(InvalidStatus(response), SecretKey("sk-secret-in-body", "$OPENAI_API_KEY"))
    assert type(error) is expected and error.retryable is retryable and error.status == status
    assert "sk-secret-in-body" not in str(error)


def test_refused_connection_is_retryable() -> None:
    """An OSError while connecting is a retryable connection error."""
    error = _raise_inside_translator(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(error, ProviderConnectionError) and "Connection refused" in str(error)
