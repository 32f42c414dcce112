"""Image input: a GA user message may carry `input_image` parts (PNG or JPEG data URIs); the simulator checks their
shape, bills them as image tokens and its reply says it saw them. Chat's `image_url` parts reach the same model.
Every Realtime event is validated against the official types by the `simulator` fixture."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from .conftest import HEADERS, ask, events_until, session, simulator

pytestmark = pytest.mark.anyio

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()


async def test_an_image_is_seen_and_billed() -> None:
    """Two images (one low detail) in a user message: the item keeps them, the reply says two images were sent,
    and the usage counts their image tokens in the input."""
    async with simulator() as sim, session(sim) as ws:
        await ask(
            ws,
            "what is this",
            {"type": "input_image", "image_url": PNG},
            {"type": "input_image", "image_url": PNG, "detail": "low"},
        )
        events = await events_until(ws, "response.done")
    added = next(e for e in events if e["type"] == "conversation.item.added")
    assert [part["type"] for part in added["item"]["content"]] == ["input_text", "input_image", "input_image"]
    assert added["item"]["content"][2]["detail"] == "low"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text.startswith('You said: "what is this"') and text.endswith("and sent 2 images")
    usage = events[-1]["response"]["usage"]
    assert usage["input_token_details"]["image_tokens"] == 765 + 85
    assert usage["input_tokens"] == usage["input_token_details"]["text_tokens"] + 850


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "image_url": "https://example.com/cat.png"}, "item.content[1].image_url"),
        ({"type": "input_image", "image_url": "data:image/gif;base64,R0lGOD=="}, "item.content[1].image_url"),
        ({"type": "input_image", "image_url": PNG, "detail": "max"}, "item.content[1].detail"),
        ({"type": "input_image"}, "item.content[1].image_url"),
    ],
)
async def test_a_malformed_image_part_is_refused(part: dict[str, Any], param: str) -> None:
    """A URL that is not a PNG/JPEG data URI, an unknown detail, or no image: an error naming the parameter."""
    async with simulator() as sim, session(sim) as ws:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}, part]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item, "event_id": "evt_bad"}))
        error = json.loads(await ws.recv())
    assert error["type"] == "error"
    assert (error["error"]["param"], error["error"]["event_id"]) == (param, "evt_bad")


async def test_beta_has_no_image_part() -> None:
    """The beta shape refuses `input_image` as an unknown content type."""
    headers = {**HEADERS, "OpenAI-Beta": "realtime=v1"}
    async with (
        simulator() as sim,
        connect(f"{sim.ws_base_url}/realtime?model=gpt-realtime", additional_headers=headers) as ws,
    ):
        await events_until(ws, "session.created")
        item = {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": PNG}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        error = json.loads(await ws.recv())
    assert error["error"]["param"] == "item.content[0].type"


async def test_chat_image_url_parts_reach_the_model() -> None:
    """A Chat message with an `image_url` part: the reply says the image was sent, the prompt tokens count it."""
    async with simulator() as sim, httpx.AsyncClient(base_url=sim.http_base_url) as client:
        content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PNG}}]
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": content}]}
        response = await client.post("/chat/completions", json=body, headers=HEADERS)
    answer = response.json()
    assert answer["choices"][0]["message"]["content"].endswith("and sent 1 image")
    assert answer["usage"]["prompt_tokens"] == 3 + 765
