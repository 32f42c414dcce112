"""Each fault kind, seen from a plain websockets / httpx client: exactly what arrives."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtflow.sim import Fault, parse_fault

from .conftest import HEADERS, ask, session, simulator, until

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
async def test_handshake_status(status: int) -> None:
    """A `status` fault refuses the handshake with that status (429 with Retry-After), then the next succeeds."""
    async with simulator(Fault(kind="status", status=status, endpoint="realtime", times=1)) as sim:
        with pytest.raises(InvalidStatus) as refused:
            async with session(sim):
                pass
        response = refused.value.response
        assert response.status_code == status
        assert json.loads(response.body or b"")["error"]["message"]
        assert (response.headers.get("Retry-After") == "1") == (status == 429)
        async with session(sim) as ws:
            await ask(ws, "fine now")
            await until(ws, "response.done")


async def test_no_key_and_wrong_key_get_an_error_event_then_close_3000() -> None:
    """As live: no key, or another key than `require_key`, upgrades the socket, sends an `invalid_api_key` error
    (never echoing the key), then closes with 3000; Chat still answers HTTP 401."""
    async with simulator(require_key="sk-right") as sim:
        for headers in ({}, HEADERS):
            async with connect(f"{sim.ws_base_url}/realtime?model=m", additional_headers=headers) as ws:
                error = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            assert error["type"] == "error"
            assert (error["error"]["type"], error["error"]["code"]) == ("invalid_request_error", "invalid_api_key")
            assert "sk-test" not in error["error"]["message"]
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
        async with httpx.AsyncClient() as http:
            reply = await http.post(f"{sim.http_base_url}/chat/completions", json={"model": "m", "messages": []})
            assert reply.status_code == 401 and set(reply.json()["error"]) == {"message", "type", "param", "code"}
        async with connect(f"{sim.ws_base_url}/realtime?model=m", additional_headers={"api-key": "sk-right"}) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"


@pytest.mark.parametrize("code", [1006, 1011])
async def test_close_mid_response(code: int) -> None:
    """A `close` fault ends the socket right after the first delta, with the configured close code."""
    async with simulator(Fault(kind="close", close_code=code)) as sim, session(sim) as ws:
        await ask(ws, "hello")
        frames = await until(ws, "response.output_text.delta")
        assert json.loads(frames[-1])["delta"] == "You "
        with pytest.raises(ConnectionClosed) as closed:
            await until(ws, "response.done")
        assert closed.value.rcvd is None if code == 1006 else closed.value.rcvd.code == 1011  # type: ignore[union-attr]


async def test_server_error_event_keeps_session() -> None:
    """A `server_error` fault sends an error event of type server_error; the next response works."""
    async with simulator(Fault(kind="server_error", times=1)) as sim, session(sim) as ws:
        await ask(ws, "first")
        error = json.loads((await until(ws, "error"))[-1])["error"]
        assert (error["type"], error["event_id"]) == ("server_error", "evt_client_1")
        await ask(ws, "second")
        done = json.loads((await until(ws, "response.done"))[-1])
        assert done["response"]["status"] == "completed"


async def test_rate_limited_response_done_failed() -> None:
    """A `rate_limited` fault ends the response as failed with a rate_limit_exceeded error."""
    async with simulator(Fault(kind="rate_limited", match="busy")) as sim, session(sim) as ws:
        await ask(ws, "are you busy")
        done = json.loads((await until(ws, "response.done"))[-1])["response"]
        assert done["status"] == "failed" and done["output"] == []
        assert done["status_details"]["error"]["code"] == "rate_limit_exceeded"
        await ask(ws, "hello")
        assert json.loads((await until(ws, "response.done"))[-1])["response"]["status"] == "completed"


async def test_stall_sends_nothing() -> None:
    """A `stall` fault leaves the client waiting: no event arrives after response.create."""
    async with simulator(Fault(kind="stall", endpoint="realtime")) as sim, session(sim) as ws:
        await ask(ws, "hello")
        await until(ws, "conversation.item.done")
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                await ws.recv()


async def test_malformed_frame() -> None:
    """A `malformed` fault sends one frame that is not JSON after response.created, then the response."""
    async with simulator(Fault(kind="malformed", times=1)) as sim, session(sim) as ws:
        await ask(ws, "hello")
        frames = await until(ws, "response.done")
        bad = [frame for frame in frames if not _is_json(frame)]
        assert len(bad) == 1
        assert json.loads(frames[frames.index(bad[0]) - 1])["type"] == "response.created"


def _is_json(frame: str) -> bool:
    try:
        json.loads(frame)
    except ValueError:
        return False
    return True


async def test_session_expired() -> None:
    """A `session_expired` fault sends an error with code session_expired, then closes with 1001."""
    async with simulator(Fault(kind="session_expired", after_s=0.2)) as sim, session(sim) as ws:
        error = json.loads((await until(ws, "error"))[-1])["error"]
        assert error["code"] == "session_expired"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


@pytest.mark.parametrize(
    ("spec", "status"),
    [("status:401@chat", 401), ("rate_limited@chat", 429), ("server_error@chat", 500), ("status:429@chat", 429)],
)
async def test_chat_status_faults(spec: str, status: int) -> None:
    """Chat faults answer with the HTTP status and an OpenAI error body; 429 carries Retry-After."""
    async with simulator(parse_fault(spec)) as sim, httpx.AsyncClient(headers=HEADERS) as http:
        reply = await http.post(
            f"{sim.http_base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == status
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        assert (reply.headers.get("retry-after") == "1") == (status == 429)


async def test_a_rate_limited_fault_announces_the_seconds_it_was_given() -> None:
    """`rate_limited:3` says Retry-After 3, in the header and in the message."""
    async with simulator(parse_fault("rate_limited:3@chat")) as sim, httpx.AsyncClient(headers=HEADERS) as http:
        reply = await http.post(
            f"{sim.http_base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert reply.status_code == 429 and reply.headers["retry-after"] == "3"
    assert "try again in 3s" in reply.json()["error"]["message"]


async def test_chat_close_and_malformed() -> None:
    """Chat `close` drops the connection mid-stream; `malformed` returns a body that is not JSON."""
    async with (
        simulator(parse_fault("close@chatx1"), parse_fault("malformed@chatx1")) as sim,
        httpx.AsyncClient(headers=HEADERS) as http,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", f"{sim.http_base_url}/chat/completions", json=body) as stream:
                async for _ in stream.aiter_lines():
                    pass
        reply = await http.post(f"{sim.http_base_url}/chat/completions", json={**body, "stream": False})
        with pytest.raises(ValueError):
            reply.json()


async def test_fault_model_probability_and_times() -> None:
    """`model` restricts a fault, `times` caps it, and `probability` with a seed fires reproducibly."""
    counts = []
    for _ in range(2):
        fault = Fault(kind="server_error", model="^mini", probability=0.5)
        async with simulator(fault, seed=7) as sim, httpx.AsyncClient(headers=HEADERS) as http:
            statuses = []
            for model in ["mini-1"] * 10 + ["big"] * 3:
                reply = await http.post(
                    f"{sim.http_base_url}/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "x"}]},
                )
                statuses.append(reply.status_code)
            assert statuses[10:] == [200, 200, 200]
            counts.append(statuses)
    assert counts[0] == counts[1] and 0 < counts[0][:10].count(500) < 10
    assert parse_fault("close:1006@realtimex2~0.5;match=hi").model_dump(include={"close_code", "times"}) == {
        "close_code": 1006,
        "times": 2,
    }
