"""Response tasks live no longer than their session, and a failing one is not swallowed."""

from __future__ import annotations

import asyncio
import json

import anyio
import pytest
from websockets.asyncio.client import connect

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.config import LatencyConfig
from rtflow.sim.responses import ResponseRun

from .conftest import HEADERS, ask, session, until

pytestmark = pytest.mark.anyio


def response_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if "_run_response" in task.get_coro().__qualname__]  # type: ignore[union-attr]


async def wait_for_no_sessions(sim: SimServer) -> None:
    with anyio.fail_after(5):
        while sim.open_sessions:
            await anyio.sleep(0.01)


async def test_client_leaving_mid_response_ends_its_task() -> None:
    """A client that disconnects during a slow response leaves no response task behind once the session ends."""
    async with SimServer(SimConfig(latency=LatencyConfig(per_delta_ms=200))) as sim:
        async with session(sim) as ws:
            await ask(ws, "one two three four five")
            await until(ws, "response.output_text.delta")
            assert len(response_tasks()) == 1
        await wait_for_no_sessions(sim)
        assert response_tasks() == []


async def test_a_failing_response_ends_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside a response task closes that session (it is not silently dropped); the server keeps serving."""

    async def broken_run(self: ResponseRun) -> None:
        raise RuntimeError("a bug in the response")

    async with SimServer(SimConfig()) as sim:
        with monkeypatch.context() as patch:
            patch.setattr(ResponseRun, "run", broken_run)
            async with connect(f"{sim.ws_base_url}/realtime?model=m", additional_headers=HEADERS) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "response.create"}))
                with anyio.fail_after(5):
                    await ws.wait_closed()
            await wait_for_no_sessions(sim)
        async with session(sim) as ws:
            await ask(ws, "still there?")
            done = json.loads((await until(ws, "response.done"))[-1])
        assert done["response"]["status"] == "completed"
