"""Response phases of newer GA models: a reasoning model's `commentary` messages are kept apart from its
`final_answer`, which alone is the turn's answer (streamed or as the response's final output)."""

from __future__ import annotations

from typing import Any

import pytest

from rtflow.messages import TurnOutput

from .conftest import Peer, ask, response_created, text_delta

pytestmark = pytest.mark.anyio


def _item(item_id: str, phase: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "message", "role": "assistant", "content": []}
    if phase is not None:
        item["phase"] = phase
    return item


async def test_commentary_is_kept_apart_from_the_final_answer() -> None:
    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"),
            {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0,
             "item": _item("item_c", "commentary")},
            text_delta("resp_1", "Let me look that up. ", "item_c"),
            {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 1,
             "item": _item("item_f", "final_answer")},
            text_delta("resp_1", "It is sunny.", "item_f"),
            {
                "type": "response.done",
                "response": {
                    "id": "resp_1",
                    "status": "completed",
                    "conversation_id": "conv_1",
                    "output": [
                        {**_item("item_c", "commentary"),
                         "content": [{"type": "output_text", "text": "Let me look that up. "}]},
                        {**_item("item_f", "final_answer"),
                         "content": [{"type": "output_text", "text": "It is sunny."}]},
                    ],
                },
            },
        )  # fmt: skip

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput)
    assert outcome.text == "It is sunny." and outcome.commentary == "Let me look that up. "


async def test_an_answer_without_phases_has_no_commentary() -> None:
    async def script(peer: Peer) -> None:
        await peer.open_turn()
        await peer.send(
            response_created("resp_1"),
            {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0,
             "item": _item("item_1", None)},
            text_delta("resp_1", "Plain.", "item_1"),
            {"type": "response.done", "response": {"id": "resp_1", "status": "completed", "conversation_id": "c",
             "output": [{**_item("item_1", None), "content": [{"type": "output_text", "text": "Plain."}]}]}},
        )  # fmt: skip

    outcome, _session, _server = await ask(script)
    assert isinstance(outcome, TurnOutput) and outcome.text == "Plain." and outcome.commentary is None
