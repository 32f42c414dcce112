"""Issue 11, item 3: events count for a turn only when they belong to its response (and errors to its events)."""

from __future__ import annotations

import pytest

from rtflow.errors import InvalidRequestError
from rtflow.messages import Message, TurnOutput

from .conftest import (
    Peer,
    answer,
    ask,
    error_event,
    item_added,
    one_turn,
    provider,
    request,
    response_created,
    response_done,
    running,
    text_delta,
)

pytestmark = pytest.mark.anyio


async def test_interleaved_out_of_band_response_is_ignored() -> None:
    """An out-of-band response streaming between the turn's deltas pollutes nothing and is noted."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_oob", conversation_id=None),
            response_created("resp_1"),
            item_added("resp_oob", "item_oob"),
            item_added("resp_1", "item_1"),
            text_delta("resp_oob", "IGNORE ", "item_oob"),
            text_delta("resp_1", "Mine ", "item_1"),
            text_delta(None, "ALSO IGNORE ", "item_oob"),  # no response_id: matched by its item
            text_delta("resp_1", "only.", "item_1"),
            response_done("resp_oob", "IGNORE ALSO IGNORE ", conversation_id=None),
            response_done("resp_1", "Mine only."),
        )

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Mine only."
    assert any("of response 'resp_oob', not this turn's response, were ignored" in w for w in session.protocol_warnings)


async def test_deltas_of_an_unknown_response_are_ignored() -> None:
    """Deltas naming a response other than the turn's are not glued into the answer."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"),
            text_delta("resp_1", "Right"),
            text_delta("resp_other", " WRONG"),
            response_done("resp_1"),
        )

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Right"


async def test_a_stray_response_done_does_not_end_the_turn() -> None:
    """A `response.done` of another response, mid-turn, is ignored; the turn ends with its own response."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"),
            text_delta("resp_1", "Not "),
            response_done("resp_stray", "stray text"),
            text_delta("resp_1", "cut short."),
            response_done("resp_1", "Not cut short."),
        )

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Not cut short."


async def test_a_duplicate_response_done_does_not_answer_the_next_turn() -> None:
    """A late second `response.done` of turn 1's response is not taken as turn 2's answer."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(*answer("resp_1", "First answer"))
        await peer.open_turn(greet=False)
        await peer.send(response_done("resp_1", "First answer"))  # the duplicate, after turn 2 asked
        await peer.send(*answer("resp_2", "Second answer", item_id="item_2"))
        await peer.hold()

    async with running(script) as server:
        session = provider(server).session("two")
        first = await one_turn(session, request("one"))
        assert isinstance(first, TurnOutput) and first.text == "First answer"
        history = [Message.of("user", "one"), Message.of("assistant", "First answer")]
        second = await one_turn(session, request("two", turn_index=1, history=history))
        await session.aclose()
    assert isinstance(second, TurnOutput) and second.text == "Second answer"
    assert len([event for event in server.received if event["type"] == "response.create"]) == 2  # one socket


async def test_an_error_about_another_event_does_not_fail_the_turn() -> None:
    """`error` naming an event_id the turn never sent is noted and ignored."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(error_event("about someone else's event", code="invalid_value", event_id="evt_elsewhere"))
        await peer.send(*answer("resp_1", "Still fine"))

    outcome, session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Still fine"
    assert any("'evt_elsewhere', which this turn did not send" in w for w in session.protocol_warnings)


async def test_an_error_about_the_turns_own_event_fails_it() -> None:
    """`error` naming the turn's `response.create` fails the turn with what the server said."""

    async def script(peer: Peer) -> None:
        event_id = await peer.open_turn()
        await peer.send(error_event("the response is not allowed", code="invalid_value", event_id=event_id))
        await peer.hold()

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, InvalidRequestError) and outcome.kind == "invalid_request"
    assert "the response is not allowed (code invalid_value)" in str(outcome) and not outcome.retryable


async def test_every_client_event_carries_its_own_event_id() -> None:
    """Each client event has an `event_id`, none repeated, so the server's errors can name it."""

    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(*answer("resp_1", "Ok"))

    outcome, _session, server = await ask(script)
    assert isinstance(outcome, TurnOutput)
    ids = [event.get("event_id") for event in server.received]
    assert [event["type"] for event in server.received] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
    assert all(isinstance(event_id, str) and event_id for event_id in ids) and len(set(ids)) == len(ids)
