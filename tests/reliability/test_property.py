"""Issue 11: whatever a server sends for a turn, `send` ends it with exactly one outcome, and never a crash.

Hypothesis draws a sequence of server events for one turn (well-formed ones of the turn's response and of
others, and malformed ones: raw text and bytes, JSON that is not an event, known event types with random
values in the fields rtflow reads) and an ending (the script runs out, or closes with a random code). The
outcome must be a TurnOutput or a ProviderError, within the deadline, with the key nowhere in it.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import event as count_as
from hypothesis import strategies as st

from rtflow.errors import ProviderError
from rtflow.log import capture_events
from rtflow.messages import TurnOutput

from .conftest import (
    CANARY,
    DEADLINE,
    Peer,
    all_text,
    audio_delta,
    error_event,
    item_added,
    one_turn,
    pcm_base64,
    provider,
    response_created,
    response_done,
    running,
    text_delta,
)

RESPONSE_IDS = st.sampled_from(["resp_1", "resp_2", "resp_oob"])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.just(10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.just(CANARY),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)

well_formed = st.one_of(
    st.builds(response_created, RESPONSE_IDS, conversation_id=st.sampled_from(["conv_1", None])),
    st.builds(item_added, RESPONSE_IDS, st.sampled_from(["item_1", "item_2"])),
    st.builds(
        text_delta, st.one_of(st.none(), RESPONSE_IDS), st.text(max_size=6), st.sampled_from(["item_1", "item_2"])
    ),
    st.builds(audio_delta, RESPONSE_IDS, st.builds(pcm_base64, st.integers(0, 50))),
    st.builds(
        response_done,
        RESPONSE_IDS,
        st.one_of(st.none(), st.text(max_size=6)),
        status=st.sampled_from(["completed", "failed", "incomplete", "cancelled", "in_progress"]),
    ),
    st.builds(
        error_event,
        st.text(max_size=20) | st.just(f"try again in 1.5s {CANARY}"),
        code=st.sampled_from([None, "invalid_value", "rate_limit_exceeded", "invalid_api_key", "session_expired"]),
        kind=st.sampled_from(["invalid_request_error", "server_error", "rate_limit_error"]),
        event_id=st.sampled_from([None, "evt_elsewhere", "rtflow-3"]),
    ),
    st.just({"type": "rate_limits.updated", "rate_limits": [{"name": "tokens", "remaining": 0, "reset_seconds": 1e9}]}),
    st.sampled_from([{"type": "session.updated", "session": {}}, {"type": "conversation.item.done"}]),
)

READ_FIELDS = ["delta", "response_id", "item_id", "response", "error", "rate_limits", "session", "item", "transcript"]
RESPONSE_FIELDS = ["id", "status", "status_details", "output", "usage", "conversation_id"]
TYPES = [
    "response.output_text.delta",
    "response.output_audio.delta",
    "response.text.delta",
    "response.created",
    "response.done",
    "response.output_item.added",
    "error",
    "rate_limits.updated",
    "session.created",
    "input_audio_buffer.committed",
    "conversation.item.input_audio_transcription.completed",
    "input_audio_buffer.speech_stopped",
    "no.such.event",
]

random_fields = st.builds(
    lambda kind, fields, response: {"type": kind, **fields, **({"response": response} if response else {})},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(READ_FIELDS), json_values, max_size=3),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(RESPONSE_FIELDS), json_values, max_size=4)),
)

raw_frames = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    json_values.map(json.dumps),
)

events = st.lists(st.one_of(well_formed, random_fields, raw_frames), max_size=12)
endings = st.one_of(st.none(), st.sampled_from([1000, 1001, 1008, 1011, 3000, 4000]))


async def _turn(sequence: list[Any], close_code: int | None) -> TurnOutput | ProviderError:
    async def script(peer: Peer) -> None:
        await peer.open_turn()
        for event in sequence:
            await (peer.send_raw(event) if isinstance(event, str | bytes) else peer.send(event))
        if close_code is not None:
            await peer.close(close_code, "bye")

    async with running(script) as server:
        session = provider(server, websocket_timeout="2s").session("property")
        outcome = await one_turn(session)
        with anyio.fail_after(DEADLINE):
            await session.aclose()
    assert all(CANARY not in text for text in all_text(outcome, session))
    return outcome


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, endings)
def test_any_event_sequence_ends_the_turn_with_one_outcome(sequence: list[Any], close_code: int | None) -> None:
    """Random well-formed and malformed events never raise anything but a ProviderError out of `send`."""
    with capture_events():
        outcome = anyio.run(_turn, sequence, close_code)
    assert isinstance(outcome, TurnOutput | ProviderError)
    count_as(type(outcome).__name__)  # --hypothesis-show-statistics shows how the outcomes spread
    if isinstance(outcome, ProviderError):
        assert outcome.kind != "provider_error"  # always one of the named kinds
