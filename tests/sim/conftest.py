"""Fixtures for the simulator's tests: a running server that records every event, checks for them, and a client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from rtflow.sim import Fault, SimConfig, SimServer

from .oracle import validate_event


def server_events(sim: SimServer, conn: str | None = None) -> list[dict[str, Any]]:
    """Every JSON event the server sent on Realtime connections (of one connection, if given)."""
    return [
        entry["payload"]
        for entry in sim.events
        if entry["dir"] == "out"
        and entry["endpoint"] == "realtime"
        and not entry["type"].startswith("<")
        and (conn is None or entry["conn"] == conn)
    ]


def connection_dialects(sim: SimServer) -> dict[str, str]:
    """Connection id -> dialect, from the connect records."""
    return {e["conn"]: e["payload"]["dialect"] for e in sim.events if e["type"] == "<connect>"}


def assert_all_sent_events_valid(sim: SimServer) -> int:
    """Validate every Realtime event the server sent against the official types; returns how many."""
    dialects = connection_dialects(sim)
    count = 0
    for entry in sim.events:
        if entry["dir"] == "out" and entry["endpoint"] == "realtime" and not entry["type"].startswith("<"):
            validate_event(entry["payload"], dialects[entry["conn"]])
            count += 1
    return count


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulator with event recording on; every Realtime event it sent is validated at teardown."""
    async with SimServer(SimConfig(record_events=True)) as server:
        yield server
    assert_all_sent_events_valid(server)


HEADERS = {"Authorization": "Bearer sk-test"}


@asynccontextmanager
async def simulator(*faults: Fault, **options: Any) -> AsyncIterator[SimServer]:
    """A recording simulator with these faults; every Realtime event it sent is validated when the block ends."""
    async with SimServer(SimConfig(faults=list(faults), record_events=True, **options)) as sim:
        yield sim
    assert_all_sent_events_valid(sim)


@asynccontextmanager
async def session(sim: SimServer, model: str = "gpt-realtime", **fields: Any) -> AsyncIterator[ClientConnection]:
    """A plain websockets client on a GA session set to text output, with `fields` merged into its update; the
    `session.updated` is read (its events after it, such as MCP listings, are left to the test)."""
    async with connect(f"{sim.ws_base_url}/realtime?model={model}", additional_headers=HEADERS) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        update = {"type": "realtime", "output_modalities": ["text"], **fields}
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        assert json.loads(await ws.recv())["type"] == "session.updated"
        yield ws


async def ask(ws: ClientConnection, text: str, *parts: dict[str, Any]) -> None:
    """A user message (`text`, then any other content `parts`) and a response.create."""
    content = [{"type": "input_text", "text": text}, *parts]
    await ws.send(
        json.dumps(
            {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content}}
        )
    )
    await ws.send(json.dumps({"type": "response.create", "event_id": "evt_client_1"}))


async def until(ws: ClientConnection, wanted: str) -> list[str]:
    """Frames (raw text) up to and including the first event of type `wanted`."""
    frames = []
    while True:
        frame = str(await ws.recv())
        frames.append(frame)
        try:
            if json.loads(frame).get("type") == wanted:
                return frames
        except ValueError:
            continue


async def events_until(ws: ClientConnection, wanted: str, timeout: float = 5) -> list[dict[str, Any]]:
    """Decoded events up to and including the first of type `wanted`, all within `timeout` seconds."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(timeout):
        while not events or events[-1]["type"] != wanted:
            events.append(json.loads(await ws.recv()))
    return events
