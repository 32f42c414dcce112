"""What leaves the simulator's socket: exactly the recorded events, in order, coalesced into few writes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.config import Fault
from rtflow.sim.wire import FrameWriter

from .conftest import assert_all_sent_events_valid, server_events

pytestmark = pytest.mark.anyio


class RawClient:
    """A WebSocket client on websockets' sans-I/O protocol over a plain TCP stream, so reads can be counted."""

    def __init__(self, stream: SocketStream, protocol: ClientProtocol) -> None:
        self.stream = stream
        self.protocol = protocol
        self.reads = 0
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, sim: SimServer, headers: dict[str, str] | None = None) -> RawClient:
        protocol = ClientProtocol(parse_uri(f"{sim.ws_base_url}/realtime?model=gpt-realtime"))
        request = protocol.connect()
        request.headers["Authorization"] = "Bearer sk-test"
        for name, value in (headers or {}).items():
            request.headers[name] = value
        protocol.send_request(request)
        client = cls(await anyio.connect_tcp(sim.host, sim.port), protocol)
        await client._write()
        while protocol.state is State.CONNECTING:
            await client._read()
        assert protocol.handshake_exc is None
        return client

    async def _write(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await self.stream.send(data)

    async def _read(self) -> None:
        data = await self.stream.receive(1 << 20)
        self.reads += 1
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self.frames.append(event)

    async def send_event(self, event: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(event).encode())
        await self._write()

    async def events_until(self, wanted: str) -> list[dict[str, Any]]:
        """Decoded events from the start of the connection up to and including the first of type `wanted`."""
        with anyio.fail_after(10):
            while True:
                events = [json.loads(bytes(frame.data)) for frame in self.frames if frame.opcode is Opcode.TEXT]
                if any(event["type"] == wanted for event in events):
                    return events[: [event["type"] for event in events].index(wanted) + 1]
                await self._read()


async def text_turn(client: RawClient, question: str) -> None:
    await client.send_event(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]},
        }
    )
    await client.send_event({"type": "response.create"})


@pytest.mark.parametrize("beta", [False, True])
async def test_wire_frames_are_the_recorded_events(beta: bool) -> None:
    """Every frame a client receives decodes to the event the server recorded, in the same order, nothing more."""
    async with SimServer(SimConfig(record_events=True)) as sim:
        client = await RawClient.connect(sim, {"OpenAI-Beta": "realtime=v1"} if beta else None)
        session = {"modalities": ["text"]} if beta else {"type": "realtime", "output_modalities": ["text"]}
        await client.send_event({"type": "session.update", "session": session})
        await client.events_until("session.updated")
        await text_turn(client, "Is the wire honest?")
        received = await client.events_until("rate_limits.updated")
        await client.stream.aclose()
    assert received == server_events(sim)
    assert received[-2]["response"]["status"] == "completed"
    assert assert_all_sent_events_valid(sim) == len(received)


async def test_a_response_leaves_in_few_writes() -> None:
    """A zero-latency text response (20+ events) reaches the client in a handful of TCP reads, not one per event."""
    async with SimServer(SimConfig()) as sim:
        client = await RawClient.connect(sim)
        await client.send_event(
            {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
        )
        await client.events_until("session.updated")
        reads_before, frames_before = client.reads, len(client.frames)
        await text_turn(client, "one two three four five six seven eight nine ten")
        await client.events_until("rate_limits.updated")
        await client.stream.aclose()
    frames = len(client.frames) - frames_before
    assert frames >= 20
    # One write for the item's two events and one for the whole response; a few more reads if timing splits them.
    assert client.reads - reads_before <= 4


async def test_close_fault_sends_the_first_delta_then_closes() -> None:
    """Queued frames go out before a close frame: the client sees the first delta, then close 1011."""
    async with SimServer(SimConfig(faults=[Fault(kind="close", close_code=1011)])) as sim:
        client = await RawClient.connect(sim)
        await client.send_event(
            {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
        )
        await text_turn(client, "hello there")
        events = await client.events_until("response.output_text.delta")
        with anyio.fail_after(10):
            while not any(frame.opcode is Opcode.CLOSE for frame in client.frames):
                await client._read()
        await client.stream.aclose()
    assert events[-1]["delta"] == "You "
    close_frame = next(frame for frame in client.frames if frame.opcode is Opcode.CLOSE)
    assert int.from_bytes(close_frame.data[:2], "big") == 1011


async def test_writer_without_uvicorn_sends_one_asgi_message_per_frame() -> None:
    """Under another ASGI server the writer sends each frame as its own websocket.send, then the close, in order."""
    sent: list[dict[str, Any]] = []

    async def asgi_send(message: dict[str, Any]) -> None:
        sent.append(message)

    writer = FrameWriter(asgi_send)
    assert not writer.coalescing
    await writer.send_text('{"type":"a"}', "a")
    await writer.send_text('{"type":"b"}', "b")
    await writer.close(1000, "done")
    assert sent == [
        {"type": "websocket.send", "text": '{"type":"a"}'},
        {"type": "websocket.send", "text": '{"type":"b"}'},
        {"type": "websocket.close", "code": 1000, "reason": "done"},
    ]


async def test_the_log_records_a_close_after_the_frames_that_went_before_it(tmp_path: Path) -> None:
    """A `close` fault: the first delta is queued, then the socket closes. In the log (memory and file alike) the
    delta comes before `<close>`, and no record is timed before one that went out earlier."""
    log_path = tmp_path / "sim.jsonl"
    config = SimConfig(faults=[Fault(kind="close", close_code=1011)], record_events=True, log_path=log_path)
    async with SimServer(config) as sim:
        client = await RawClient.connect(sim)
        await client.send_event(
            {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
        )
        await text_turn(client, "hello there")
        await client.events_until("response.output_text.delta")
        with anyio.fail_after(10):
            while not any(frame.opcode is Opcode.CLOSE for frame in client.frames):
                await client._read()
        await client.stream.aclose()
    in_file = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    for records in (sim.events, in_file):
        out = [record for record in records if record["dir"] == "out"]
        kinds = [record["type"] for record in out]
        assert kinds[-2:] == ["response.output_text.delta", "<close>"], kinds[-4:]
        assert out[-1]["payload"]["code"] == 1011
        assert all(earlier["ts"] <= later["ts"] for earlier, later in itertools.pairwise(out))
    assert [record["payload"] for record in in_file] == [record["payload"] for record in sim.events]
