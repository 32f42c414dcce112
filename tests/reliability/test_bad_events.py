"""Issue 11, item 1: whatever a server sends is read defensively; only an unreadable answer fails the turn."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rtflow.errors import ProtocolError
from rtflow.log import capture_events
from rtflow.messages import TurnOutput, Usage

from .conftest import (
    DEADLINE,
    Peer,
    answer,
    ask,
    audio_delta,
    pcm_base64,
    response_created,
    response_done,
    text_delta,
)

pytestmark = pytest.mark.anyio

BAD_FRAMES: list[tuple[str, Any, str]] = [
    ("not JSON", "{not json", "not JSON"),
    ("JSON but not an object", "[1, 2, 3]", "not an event"),
    ("no type", {"delta": "x"}, "not an event"),
    ("unknown event type", {"type": "response.made_up", "delta": "x"}, "unknown type 'response.made_up'"),
    ("delta of the wrong type", text_delta("resp_1", 5), "delta is an integer 5, not a string"),  # type: ignore[arg-type]
    ("bad base64 audio", audio_delta("resp_1", "%%% not base64 %%%"), "not valid base64"),
    ("audio delta not text", audio_delta("resp_1", {"pcm": 1}), "not base64 text"),  # type: ignore[arg-type]
    (
        "rate limits in words",
        {"type": "rate_limits.updated", "rate_limits": [{"name": "tokens", "remaining": "0", "reset_seconds": "9"}]},
        "remaining is a string '0', not a finite number",
    ),
    ("rate limits not a list", {"type": "rate_limits.updated", "rate_limits": "many"}, "not a list"),
    ("session.created inside a turn, model a number", {"type": "session.created", "session": {"model": 7}}, "model"),
    ("binary garbage", b"\xff\xfe\x00garbage", "not JSON"),
    (
        "idle timeout with its times in words",
        {"type": "input_audio_buffer.timeout_triggered", "item_id": "item_1", "audio_start_ms": "soon"},
        "input_audio_buffer.timeout_triggered",
    ),
]


@pytest.mark.parametrize(("frame", "warning"), [pytest.param(f, w, id=name) for name, f, w in BAD_FRAMES])
async def test_a_bad_frame_is_skipped_and_noted(frame: Any, warning: str) -> None:
    """A frame that is not JSON, of an unknown type or with a field of the wrong type is skipped, noted and
    logged as a protocol warning; the turn still answers."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        first, *rest = answer("resp_1", "Hello there")
        await peer.send(first)
        await (peer.send_raw(frame) if isinstance(frame, str | bytes) else peer.send(frame))
        await peer.send(*rest)

    started = time.perf_counter()
    with capture_events() as logged:
        outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput), outcome
    assert outcome.text == "Hello there"
    assert outcome.rate_limit_pause_s is None
    assert any(warning in text for text in session.protocol_warnings), session.protocol_warnings
    assert [event["warning"] for event in logged if event["event"] == "realtime.protocol_warning"] == (
        session.protocol_warnings
    )
    assert time.perf_counter() - started < DEADLINE


async def test_usage_fields_of_the_wrong_type_read_as_zero() -> None:
    """`usage.input_tokens: "12"` and `input_token_details: "x"` are skipped; the other figures are kept."""
    usage = {"total_tokens": 30, "input_tokens": "12", "output_tokens": 10, "input_token_details": "x"}

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(*answer("resp_1", "Counted", usage=usage))

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput)
    assert outcome.text == "Counted"
    assert outcome.usage == Usage(input_tokens=0, output_tokens=10, total_tokens=30)
    assert any("usage.input_tokens is a string '12'" in text for text in session.protocol_warnings)
    assert any("usage.input_token_details is a string 'x'" in text for text in session.protocol_warnings)


async def test_content_of_the_wrong_type_is_skipped_when_the_deltas_carry_the_answer() -> None:
    """A final output whose `content` is `5` is noted; the streamed deltas are the answer."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(response_created("resp_1"), text_delta("resp_1", "Streamed answer"))
        await peer.send(response_done("resp_1", content=5))

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Streamed answer"
    assert any("content is an integer 5, not a list" in text for text in session.protocol_warnings)


async def test_an_answer_that_cannot_be_read_is_a_retryable_protocol_error() -> None:
    """No deltas and an output whose content is `5`: nothing of the answer can be read, so the turn fails with
    a retryable ProtocolError that says what was skipped."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(response_created("resp_1"), response_done("resp_1", content=5))
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, ProtocolError), outcome
    assert outcome.kind == "protocol" and outcome.retryable
    assert "the answer cannot be read" in str(outcome) and "content is an integer 5" in str(outcome)


async def test_a_response_done_without_a_response_object_is_a_protocol_error() -> None:
    """`response.done {response: "x"}` cannot be read at all: a retryable ProtocolError, at once."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"), text_delta("resp_1", "half"), {"type": "response.done", "response": "x"}
        )
        await peer.hold()

    started = time.perf_counter()
    outcome, _session, _server = await ask(script, websocket_timeout="3s")
    assert isinstance(outcome, ProtocolError) and outcome.retryable
    assert "response.done without a readable response" in str(outcome)
    assert time.perf_counter() - started < 1.0  # failed on the frame, not after the 3 s of silence


async def test_a_lost_frame_with_nothing_readable_is_a_protocol_error() -> None:
    """A frame of the response lost (not JSON) and a response that lists no output: the answer is lost."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(response_created("resp_1"))
        await peer.send_raw('{"type": "response.output_text.delta", "response_id": "resp_1", "delta": "Hel')
        await peer.send(response_done("resp_1"))
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, ProtocolError) and outcome.kind == "protocol"
    assert "frames that could not be read" in str(outcome) and "not JSON" in str(outcome)


async def test_an_audio_delta_with_bad_base64_keeps_the_good_audio() -> None:
    """Good audio deltas are kept and a bad one skipped: the turn's audio is exactly the good samples."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"),
            audio_delta("resp_1", pcm_base64(2400)),
            audio_delta("resp_1", "not*base64"),
            text_delta("resp_1", "Spoken"),
            response_done("resp_1", "Spoken"),
        )

    outcome, session, _server = await ask(script, modalities=["audio"])
    assert isinstance(outcome, TurnOutput) and outcome.text == "Spoken"
    assert outcome.metrics.output_audio_s == pytest.approx(0.1)
    assert len(session.protocol_warnings) == 1
