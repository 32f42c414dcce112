"""`conversation.item.retrieve`: the server's copy of an item comes back as `conversation.item.retrieved` (a user
item's input audio with its bytes), and an unknown item id gets an error while the session stays open. Every event
is validated against the official types by the `simulator` fixture."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from .conftest import HEADERS, events_until, session, simulator

pytestmark = pytest.mark.anyio

BETA = {"OpenAI-Beta": "realtime=v1"}


async def retrieve(ws: ClientConnection, item_id: str, event_id: str = "evt_get") -> dict[str, Any]:
    await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": item_id, "event_id": event_id}))
    with anyio.fail_after(5):
        event: dict[str, Any] = json.loads(await ws.recv())
    return event


@pytest.mark.parametrize("beta", [False, True])
async def test_retrieve_returns_the_item_as_the_server_holds_it(beta: bool) -> None:
    """A user text item and the assistant's answer come back as they were announced."""
    headers = {**HEADERS, **(BETA if beta else {})}
    update = {"modalities": ["text"]} if beta else {"type": "realtime", "output_modalities": ["text"]}
    async with (
        simulator() as sim,
        connect(f"{sim.ws_base_url}/realtime?model=gpt-realtime", additional_headers=headers) as ws,
    ):
        await events_until(ws, "session.created")
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        await events_until(ws, "session.updated")
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "keep this"}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        announced = (await events_until(ws, "conversation.item.created" if beta else "conversation.item.done"))[-1]
        await ws.send(json.dumps({"type": "response.create"}))
        done = (await events_until(ws, "response.done"))[-1]
        await events_until(ws, "rate_limits.updated")
        user = await retrieve(ws, announced["item"]["id"])
        assistant = await retrieve(ws, done["response"]["output"][0]["id"])
    assert user["type"] == "conversation.item.retrieved"
    assert user["item"] == announced["item"]
    assert assistant["item"]["role"] == "assistant" and assistant["item"]["status"] == "completed"
    assert assistant["item"]["content"][0]["text"].startswith('You said: "keep this"')


async def test_retrieved_input_audio_carries_its_bytes() -> None:
    """Committed input audio: the retrieved user item holds the audio the buffer committed and its transcript."""
    audio = bytes(range(256)) * 40  # 10,240 bytes: about 213 ms of pcm16
    async with simulator() as sim, session(sim, audio={"input": {"turn_detection": None}}) as ws:
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        committed = (await events_until(ws, "conversation.item.done"))[0]
        retrieved = await retrieve(ws, committed["item_id"])
    (part,) = retrieved["item"]["content"]
    assert part["type"] == "input_audio"
    assert base64.b64decode(part["audio"]) == audio
    assert part["transcript"] == "audio of 0.21 seconds"


async def test_unknown_item_is_an_error_and_the_session_stays_open() -> None:
    """An unknown id gets `invalid_value` on `item_id`, tied to the client's event; the session answers on."""
    async with (
        simulator() as sim,
        connect(f"{sim.ws_base_url}/realtime?model=gpt-realtime", additional_headers=HEADERS) as ws,
    ):
        await events_until(ws, "session.created")
        error = await retrieve(ws, "item_missing", "evt_missing")
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        item_id = (await events_until(ws, "conversation.item.done"))[-1]["item"]["id"]
        await ws.send(json.dumps({"type": "conversation.item.delete", "item_id": item_id}))
        await events_until(ws, "conversation.item.deleted")
        deleted = await retrieve(ws, item_id)
    assert error["type"] == "error"
    assert (error["error"]["code"], error["error"]["param"], error["error"]["event_id"]) == (
        "invalid_value",
        "item_id",
        "evt_missing",
    )
    assert error["error"]["message"] == "Item with item_id 'item_missing' not found."
    assert deleted["type"] == "error" and deleted["error"]["param"] == "item_id"
