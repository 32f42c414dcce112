"""Fixtures for the simulator's tests: a running server that records every event, and checks for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from rtflow.sim import SimConfig, SimServer

from .oracle import validate_event


def server_events(sim: SimServer, conn: str | None = None) -> list[dict[str, Any]]:
    """Every JSON event the server sent on Realtime connections (of one connection, if given)."""
    return [
        entry["payload"]
        for entry in sim.events
        if entry["dir"] == "out" and entry["endpoint"] == "realtime" and not entry["type"].startswith("<")
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
