"""The simulator's GA dialect speaks MCP: tool listings, MCP calls and approvals. Every event is validated against
the official types by the `sim` fixture."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from openai.types.realtime import RealtimeMcpApprovalRequest, RealtimeMcpListTools, RealtimeMcpToolCall
from websockets.asyncio.client import ClientConnection

from rtflow.sim import SimServer
from rtflow.sim.mcp import echo_output

from .conftest import ask, events_until, server_events, session

pytestmark = pytest.mark.anyio

SECRET = "mcp-token-very-secret-123"


def mcp_tool(**extra: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example.com/sse",
        "authorization": SECRET,
        "allowed_tools": ["search_docs"],
        **extra,
    }


@asynccontextmanager
async def mcp_session(
    sim: SimServer, tool: dict[str, Any]
) -> AsyncIterator[tuple[ClientConnection, list[dict[str, Any]]]]:
    """A session with this MCP tool, once its tools are listed; yields the socket and every event the server sent
    after `session.created` (the `session.updated`, then the listing)."""
    async with session(sim, tools=[tool]) as ws:
        await events_until(ws, "conversation.item.done")
        yield ws, server_events(sim)[1:]


async def test_session_update_lists_the_fake_servers_tools(sim: SimServer) -> None:
    """An mcp tool draws the listing events and an mcp_list_tools item naming allowed_tools; no secret is echoed."""
    async with mcp_session(sim, mcp_tool()) as (_, events):
        types = [event["type"] for event in events]
        assert types == [
            "session.updated",
            "conversation.item.added",
            "mcp_list_tools.in_progress",
            "mcp_list_tools.completed",
            "conversation.item.done",
        ]
        listing = RealtimeMcpListTools.model_validate(events[-1]["item"])
        assert listing.server_label == "docs" and [tool.name for tool in listing.tools] == ["search_docs"]
        assert events[2]["item_id"] == events[3]["item_id"] == listing.id
        assert SECRET not in json.dumps(events)


async def test_default_tool_is_lookup(sim: SimServer) -> None:
    """Without allowed_tools the fake server offers one tool, lookup."""
    tool = {key: value for key, value in mcp_tool().items() if key != "allowed_tools"}
    async with mcp_session(sim, tool) as (_, events):
        assert [entry["name"] for entry in events[-1]["item"]["tools"]] == ["lookup"]


async def test_named_tool_runs_as_an_mcp_call_then_the_answer_quotes_its_output(sim: SimServer) -> None:
    """A line naming the tool: the mcp_call item and its events in order, then text holding the echo."""
    async with mcp_session(sim, mcp_tool()) as (ws, _):
        await ask(ws, "please search the docs for refunds")
        events = await events_until(ws, "response.done")
        types = [event["type"] for event in events]
        call_events = [kind for kind in types if "mcp_call" in kind]
        assert call_events == [
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
        ]
        added = types.index("response.output_item.added")
        assert added < types.index("response.mcp_call_arguments.delta")
        done = events[-1]["response"]
        assert done["status"] == "completed"
        call = RealtimeMcpToolCall.model_validate(done["output"][0])
        assert call.name == "search_docs" and call.server_label == "docs"
        assert json.loads(call.arguments) == {"query": "please search the docs for refunds"}
        assert call.output == echo_output("search_docs", call.arguments)
        answer = done["output"][1]["content"][0]["text"]
        assert answer == f"Tool search_docs on docs returned: {call.output}"


async def test_unnamed_tool_is_not_called(sim: SimServer) -> None:
    """A line that names no MCP tool gets the ordinary answer and no mcp_call."""
    async with mcp_session(sim, mcp_tool()) as (ws, _):
        await ask(ws, "hello there")
        events = await events_until(ws, "response.done")
        assert not any("mcp" in event["type"] for event in events)
        assert [item["type"] for item in events[-1]["response"]["output"]] == ["message"]


async def approval_request(ws: ClientConnection) -> RealtimeMcpApprovalRequest:
    await ask(ws, "search the docs for shipping")
    events = await events_until(ws, "response.done")
    assert not any("mcp_call" in event["type"] for event in events)
    (item,) = events[-1]["response"]["output"]
    return RealtimeMcpApprovalRequest.model_validate(item)


async def answer(ws: ClientConnection, request_id: str, approve: bool) -> list[dict[str, Any]]:
    item = {"type": "mcp_approval_response", "id": "mcpr_client_1", "approval_request_id": request_id}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {**item, "approve": approve}}))
    added = await events_until(ws, "conversation.item.done")
    assert added[-1]["item"]["type"] == "mcp_approval_response"
    await ws.send(json.dumps({"type": "response.create"}))
    return await events_until(ws, "response.done")


async def test_approved_call_runs_in_the_next_response(sim: SimServer) -> None:
    """require_approval always: the response ends with the request; approved, the next response runs the call."""
    async with mcp_session(sim, mcp_tool(require_approval="always")) as (ws, _):
        request = await approval_request(ws)
        assert request.name == "search_docs" and request.server_label == "docs"
        events = await answer(ws, request.id, True)
        call = RealtimeMcpToolCall.model_validate(events[-1]["response"]["output"][0])
        assert call.approval_request_id == request.id and call.output
        assert "response.mcp_call.completed" in [event["type"] for event in events]


async def test_denied_call_is_not_made(sim: SimServer) -> None:
    """Denied: no mcp_call, and the answer says the call was not allowed."""
    async with mcp_session(sim, mcp_tool(require_approval="always")) as (ws, _):
        request = await approval_request(ws)
        events = await answer(ws, request.id, False)
        assert not any("mcp_call" in event["type"] for event in events)
        (message,) = events[-1]["response"]["output"]
        assert message["content"][0]["text"] == "Tool search_docs on docs was not allowed."


async def test_approval_for_an_unknown_request_is_refused(sim: SimServer) -> None:
    """An mcp_approval_response naming no request of the conversation is an error; the session stays open."""
    async with mcp_session(sim, mcp_tool()) as (ws, _):
        item = {"type": "mcp_approval_response", "id": "mcpr_x", "approval_request_id": "mcpr_nope", "approve": True}
        await ws.send(json.dumps({"type": "conversation.item.create", "event_id": "e1", "item": item}))
        (error,) = await events_until(ws, "error")
        assert error["error"]["param"] == "item.approval_request_id" and error["error"]["event_id"] == "e1"


async def test_official_client_runs_the_approval_flow(sim: SimServer) -> None:
    """The official openai client parses every MCP event and item of an approved call."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="sk-test", websocket_base_url=sim.ws_base_url, base_url=sim.http_base_url)
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "tools": [mcp_tool(require_approval="always")]}
        )
        await connection.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "search docs"}]}
        )
        await connection.response.create()
        kinds: list[str] = []
        request_id = None
        async for event in connection:
            kinds.append(event.type)
            if event.type == "response.done" and request_id is None:
                request_id = event.response.output[0].id  # type: ignore[index,union-attr]
                await connection.conversation.item.create(
                    item={
                        "type": "mcp_approval_response",
                        "id": "mcpr_c",
                        "approval_request_id": request_id,
                        "approve": True,
                    }
                )
                await connection.response.create()
            elif event.type == "response.done":
                break
        assert "mcp_list_tools.completed" in kinds and "response.mcp_call.completed" in kinds
