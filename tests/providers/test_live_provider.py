"""`openai:live:MODEL` against a scripted GPT-Live server of the test's own.

The server (`LiveServer`) is plain websockets on 127.0.0.1, port 0. It reads the client's continuous stream of
20 ms frames, finds the caller's lines in it (voiced frames followed by silence), and answers as each test
scripts it. Every event it sends is validated against `openai.types.live` first, and every client event it
reads likewise, so the fake speaks the wire the real service defines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import soundfile
from openai.types.live import (
    CommentaryAppendEvent,
    DelegationCreatedEvent,
    ErrorEvent,
    InputAudioAppendEvent,
    InputTranscriptDeltaEvent,
    OutputAudioDeltaEvent,
    OutputTranscriptDeltaEvent,
    SessionClosedEvent,
    SessionCloseEvent,
    SessionStartedEvent,
    SessionStartEvent,
    SessionUsageUpdatedEvent,
)
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from rtflow.errors import AuthenticationError, ProviderConnectionError
from rtflow.messages import InterruptPlan, Message, TurnOutput, TurnRequest
from rtflow.providers import registry
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_live import LiveProvider, LiveSession
from rtflow.providers.registry import create_provider

pytestmark = pytest.mark.anyio

CANARY = "sk-CANARY-live-7d2e9f0a1b3c4d5e"
DEADLINE = 15.0
VOICED = 1000
"""A frame whose loudest sample reaches this is speech; below it, silence."""
_SERVER_TYPES: dict[str, type[BaseModel]] = {
    "session.started": SessionStartedEvent,
    "session.output_audio.delta": OutputAudioDeltaEvent,
    "session.output_transcript.delta": OutputTranscriptDeltaEvent,
    "session.input_transcript.delta": InputTranscriptDeltaEvent,
    "session.delegation.created": DelegationCreatedEvent,
    "session.usage.updated": SessionUsageUpdatedEvent,
    "session.closed": SessionClosedEvent,
    "error": ErrorEvent,
}
_CLIENT_TYPES: dict[str, type[BaseModel]] = {
    "session.start": SessionStartEvent,
    "session.input_audio.append": InputAudioAppendEvent,
    "session.commentary.append": CommentaryAppendEvent,
    "session.close": SessionCloseEvent,
}


def _tone(ms: int, level: float = 0.5) -> bytes:
    """`ms` of an audible 440 Hz tone, pcm16 24 kHz."""
    t = np.arange(24 * ms) / 24_000
    return (np.sin(2 * np.pi * 440 * t) * level * 32767).astype("<i2").tobytes()


def _resource(model: str = "gpt-live-1") -> dict[str, Any]:
    return {
        "id": "sess_live1",
        "expires_at": 2_000_000_000,
        "model": model,
        "status": "active",
        "audio": {"format": {"type": "audio/pcm", "rate": 24000}},
    }


class Peer:
    """The server's end of one connection: the stream it heard, and the steps a script takes."""

    def __init__(self, connection: ServerConnection, server: LiveServer) -> None:
        self.connection = connection
        self.server = server
        self.voiced: list[bool] = []
        self.frame_times: list[float] = []
        self.lines: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.caller_speaking = asyncio.Event()
        self._ids = 0

    @property
    def now_ms(self) -> int:
        """The session timeline: milliseconds of input audio heard."""
        return len(self.voiced) * 20

    async def send(self, event: dict[str, Any]) -> None:
        """Send one event, after checking it against the official type (so the fake is true)."""
        self._ids += 1
        if event["type"] != "session.output_audio.delta":  # audio deltas carry no event_id on the primary socket
            event.setdefault("event_id", f"event_{self._ids}")
        _SERVER_TYPES[event["type"]].model_validate(event)
        await self.connection.send(json.dumps(event))

    async def start(self) -> dict[str, Any]:
        """Read `session.start`, answer `session.started`, and begin listening to the stream."""
        start = json.loads(await self.connection.recv())
        SessionStartEvent.model_validate(start)
        self.server.starts.append(start)
        await self.send({"type": "session.started", "session": _resource(start["session"]["model"])})
        asyncio.get_running_loop().create_task(self._listen())
        return dict(start)

    async def _listen(self) -> None:
        run_start: int | None = None
        quiet = 0
        with contextlib.suppress(ConnectionClosed):
            async for message in self.connection:
                event = json.loads(message)
                _CLIENT_TYPES[event["type"]].model_validate(event)
                if event["type"] != "session.input_audio.append":
                    self.server.commands.append(event)
                    self.commands.put_nowait(event)
                    continue
                samples = np.frombuffer(base64.b64decode(event["audio"]), dtype="<i2")
                voiced = bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) >= VOICED
                self.voiced.append(voiced)
                self.frame_times.append(time.perf_counter())
                if voiced:
                    quiet = 0
                    if run_start is None:
                        run_start = self.now_ms - 20
                        self.caller_speaking.set()
                elif run_start is not None:
                    quiet += 1
                    if quiet == 3:
                        self.lines.put_nowait((run_start, self.now_ms - 60))
                        run_start = None
                        self.caller_speaking.clear()

    async def next_line(self) -> tuple[int, int]:
        """Wait for the caller's next line; (start_ms, end_ms) on the session timeline."""
        return await self.lines.get()

    async def heard(self, start: int, end: int, text: str) -> None:
        """The input transcript of a line."""
        await self.send({"type": "session.input_transcript.delta", "delta": text, "start_ms": start, "end_ms": end})

    async def speak(self, text: str, *, word_ms: int = 100, yield_to_caller: bool = False) -> None:
        """Say `text` in real time: per word, its transcript delta (stamped on the timeline) and its audio in
        two 50 ms deltas. With `yield_to_caller`, stop one chunk after the caller starts speaking."""
        words = text.split(" ")
        for index, word in enumerate(words):
            piece = word if index == len(words) - 1 else word + " "
            now = self.now_ms
            await self.send(
                {"type": "session.output_transcript.delta", "delta": piece, "start_ms": now, "end_ms": now + word_ms}
            )
            for _ in range(2):
                audio = base64.b64encode(_tone(word_ms // 2, 0.3)).decode()
                await self.send({"type": "session.output_audio.delta", "delta": audio})
                await asyncio.sleep(word_ms / 2000)
                if yield_to_caller and self.caller_speaking.is_set():
                    return

    async def command(self, event_type: str) -> dict[str, Any]:
        while True:
            event = await self.commands.get()
            if event["type"] == event_type:
                return event

    async def hold(self) -> None:
        with anyio.move_on_after(DEADLINE):
            await self.connection.wait_closed()


Script = Callable[[Peer], Awaitable[None]]


class LiveServer:
    """A scripted GPT-Live server on loopback; `scripts[n]` runs the n-th connection (the last repeats)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.peers: list[Peer] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.starts: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _process(self, connection: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        self.auth.append(request.headers.get("Authorization"))
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        peer = Peer(connection, self)
        self.peers.append(peer)
        script = self.scripts[min(len(self.peers), len(self.scripts)) - 1]
        with contextlib.suppress(ConnectionClosed):
            await script(peer)


@asynccontextmanager
async def live_server(*scripts: Script) -> AsyncIterator[LiveServer]:
    server = LiveServer(*scripts)
    async with serve(server._handle, "127.0.0.1", 0, process_request=server._process, compression=None) as running:
        server.port = int(next(iter(running.sockets)).getsockname()[1])
        yield server


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    """Three caller lines: 300 ms tones, as WAV files."""
    paths = []
    for index in range(3):
        path = tmp_path / f"line{index + 1}.wav"
        samples = np.frombuffer(_tone(300), dtype="<i2")
        soundfile.write(path, samples, 24_000, subtype="PCM_16")
        paths.append(path)
    return paths


def _provider(server: LiveServer, base_dir: Path, **config: Any) -> LiveProvider:
    settings = {"api_base_url": server.base_url, "api_key": CANARY, "turn_silence_ms": 250, "turn_timeout": "5s"}
    settings.update(config)
    return LiveProvider(ProviderInfo(id="openai:live:gpt-live-1", label="live", config=settings, base_dir=base_dir))


def _request(index: int, clip: Path, artifact_dir: Path | None = None, **extra: Any) -> TurnRequest:
    return TurnRequest(
        conversation_id="conv",
        turn_index=index,
        messages=[Message.of("user", f"line {index + 1}")],
        vars={"audio": str(clip)},
        artifact_dir=str(artifact_dir) if artifact_dir else None,
        **extra,
    )


async def _turns(session: LiveSession, requests: list[TurnRequest]) -> list[TurnOutput]:
    outputs = []
    with anyio.fail_after(DEADLINE):
        for request in requests:
            outputs.append(await session.send(request))
    return outputs


ANSWERS = ["Hello there.", "It is sunny today.", "Goodbye now."]


async def _three_answers(peer: Peer) -> None:
    await peer.start()
    for index, answer in enumerate(ANSWERS):
        start, end = await peer.next_line()
        await peer.heard(start, end, f"caller line {index + 1}")
        await peer.send({"type": "session.usage.updated", "usage": {"seconds": 1 + index}})
        await peer.speak(answer)
    await peer.hold()


async def test_three_turns_share_one_continuous_stream(clips: list[Path], tmp_path: Path) -> None:
    async with live_server(_three_answers) as server:
        provider = _provider(server, tmp_path, instructions="Be brief.", voice="marin")
        session = provider.session("conv")
        started = time.perf_counter()
        try:
            outputs = await _turns(session, [_request(i, clip, tmp_path / "out") for i, clip in enumerate(clips)])
        finally:
            await session.aclose()
        elapsed = time.perf_counter() - started
    assert [output.text for output in outputs] == ANSWERS
    assert [output.input_transcript for output in outputs] == [f"caller line {i}" for i in (1, 2, 3)]
    assert len(server.peers) == 1 and server.paths == ["/v1/live/sessions"]
    assert server.auth == [f"Bearer {CANARY}"]
    session_config = server.starts[0]["session"]
    assert session_config["model"] == "gpt-live-1" and session_config["instructions"] == "Be brief."
    assert session_config["audio"] == {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "marin"}}
    peer = server.peers[0]
    # Continuous: one 20 ms frame per 20 ms of the session, silence included.
    span = peer.frame_times[-1] - peer.frame_times[0]
    assert abs(len(peer.frame_times) - (span / 0.02 + 1)) <= max(5, 0.05 * len(peer.frame_times))
    assert len(peer.frame_times) * 0.02 <= elapsed + 0.1
    # Three voiced runs of 15 frames (300 ms), silence everywhere else.
    runs = [len(run) for run in "".join("v" if v else "." for v in peer.voiced).split(".") if run]
    assert runs == [15, 15, 15]
    assert peer.voiced.count(False) > 3 * 10  # between lines (and after the last) the stream is silence
    for output in outputs:
        assert output.metrics.ttfa_ms is not None and output.metrics.response_latency_ms is not None
        assert output.metrics.response_latency_ms > 0
        assert output.audio is not None and Path(output.audio.file).is_file()
        assert output.cost == pytest.approx(0.05 / 60)  # a second billed each turn, at gpt-live-1's rate
        assert output.metrics.connect_ms is None or output is outputs[0]
    assert outputs[0].metrics.connect_ms is not None
    assert any(mark.type == "session.usage.updated" and mark.detail for mark in outputs[2].events)
    assert session.usage_seconds == 3
    assert server.commands[-1]["type"] == "session.close"


TOOLS = """
def lookup(args):
    return f"Sunny in Paris (asked: {args['transcript']})"
"""


async def test_client_delegation_runs_the_handler_and_sends_commentary(clips: list[Path], tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(TOOLS)

    async def script(peer: Peer) -> None:
        await peer.start()
        start, end = await peer.next_line()
        await peer.heard(start, end, "weather in Paris?")
        await peer.speak("Let me check.")
        backend = {"id": "deleg_backend", "target": "responses", "type": "delegation", "response_id": "resp_1"}
        await peer.send({"type": "session.delegation.created", "delegation": backend, "offset_ms": peer.now_ms})
        delegation = {"id": "deleg_1", "target": "client", "type": "delegation"}
        await peer.send({"type": "session.delegation.created", "delegation": delegation, "offset_ms": peer.now_ms})
        answer = await peer.command("session.commentary.append")
        assert answer["delegation_id"] == "deleg_1"
        await asyncio.sleep(0.4)  # the backend is slow: longer than turn_silence_ms
        await peer.speak("It is sunny in Paris.")
        await peer.hold()

    async with live_server(script) as server:
        provider = _provider(server, tmp_path, function_handlers={"lookup": "file://tools.py:lookup"})
        session = provider.session("conv")
        try:
            (output,) = await _turns(session, [_request(0, clips[0])])
        finally:
            await session.aclose()
    assert server.starts[0]["session"]["delegation"] == {"type": "client"}
    assert output.text == "Let me check.It is sunny in Paris."
    backend_call, client_call = output.tool_calls
    assert (backend_call.name, backend_call.call_id, backend_call.output) == ("responses", "deleg_backend", None)
    assert client_call.name == "lookup" and client_call.call_id == "deleg_1"
    assert client_call.output == "Sunny in Paris (asked: weather in Paris?)"
    commentary = [event for event in server.commands if event["type"] == "session.commentary.append"]
    assert commentary[0]["content"] == client_call.output
    assert output.metrics.tool_silence_ms and output.metrics.tool_silence_ms[0] > 300


async def test_barge_in_streams_the_next_clip_over_the_answer(clips: list[Path], tmp_path: Path) -> None:
    long_answer = " ".join(f"word{i}" for i in range(20))  # 2 s of speech

    async def script(peer: Peer) -> None:
        await peer.start()
        start, end = await peer.next_line()
        await peer.heard(start, end, "first")
        await peer.speak(long_answer, yield_to_caller=True)
        start, end = await peer.next_line()
        await peer.heard(start, end, "second")
        await peer.speak("Okay then.")
        await peer.hold()

    async with live_server(script) as server:
        provider = _provider(server, tmp_path)
        session = provider.session("conv")
        plan = InterruptPlan(after_ms=300, audio=str(clips[1]))
        try:
            first, second = await _turns(session, [_request(0, clips[0], interrupt=plan), _request(1, clips[1])])
        finally:
            await session.aclose()
    assert first.interruption is not None and first.interruption.plan == "after 300 ms heard"
    assert first.metrics.yield_ms is not None and 0 <= first.metrics.yield_ms < 600
    assert first.text.startswith("word0 word1") and len(first.text.split()) < 20  # the agent yielded
    assert first.heard_text is not None and first.heard_text.startswith("word0")
    assert len(first.heard_text.split()) <= len(first.text.split())
    assert second.text == "Okay then." and second.input_transcript == "second"
    runs = [len(run) for run in "".join("v" if v else "." for v in server.peers[0].voiced).split(".") if run]
    assert runs == [15, 15]  # the barge-in clip was said once, not again by its own turn


async def test_barge_in_without_a_clip_is_a_protocol_warning(clips: list[Path], tmp_path: Path) -> None:
    async def script(peer: Peer) -> None:
        await peer.start()
        await peer.next_line()
        await peer.speak("one two three four five six")
        await peer.hold()

    async with live_server(script) as server:
        session = _provider(server, tmp_path).session("conv")
        try:
            (output,) = await _turns(session, [_request(0, clips[0], interrupt=InterruptPlan(after_ms=200))])
        finally:
            await session.aclose()
    assert any("needs the next turn's clip" in warning for warning in output.protocol_warnings)


async def test_session_closed_mid_turn_fails_clearly_then_reconnects(clips: list[Path], tmp_path: Path) -> None:
    async def closes(peer: Peer) -> None:
        await peer.start()
        await peer.next_line()
        await peer.speak("I was")
        closed = {"type": "session.closed", "reason": "expired", "session": _resource(), "usage": {"seconds": 60}}
        await peer.send(closed)
        await peer.connection.close()

    async def answers(peer: Peer) -> None:
        await peer.start()
        await peer.next_line()
        await peer.speak("Back again.")
        await peer.hold()

    async with live_server(closes, answers) as server:
        session = _provider(server, tmp_path).session("conv")
        try:
            with anyio.fail_after(DEADLINE), pytest.raises(ProviderConnectionError) as failure:
                await session.send(_request(0, clips[0]))
            output = (await _turns(session, [_request(1, clips[1])]))[0]
        finally:
            await session.aclose()
    assert "expired" in str(failure.value) and failure.value.code == "expired" and failure.value.retryable
    assert output.text == "Back again." and output.metrics.connect_ms is not None
    assert len(server.peers) == 2


async def _first_turn_fails(server: LiveServer, tmp_path: Path, clip: Path, expected: type[Exception]) -> Exception:
    """The error the first turn of a new session fails with (which must be of type `expected`)."""
    session = _provider(server, tmp_path).session("conv")
    try:
        with anyio.fail_after(DEADLINE), pytest.raises(expected) as failure:
            await session.send(_request(0, clip))
    finally:
        await session.aclose()
    return failure.value


async def test_a_close_without_session_closed_fails_the_turn_with_the_close_code(
    clips: list[Path], tmp_path: Path
) -> None:
    """The socket closes (1011) while the microphone streams: the turn fails, naming the close, however the
    microphone's next frame and the reader's read are ordered (the reader reports it; the microphone stops)."""

    async def drops(peer: Peer) -> None:
        await peer.start()
        await peer.next_line()
        await peer.speak("I was")
        await peer.connection.close(1011, "internal error")

    async with live_server(drops) as server:
        failure = await _first_turn_fails(server, tmp_path, clips[0], ProviderConnectionError)
    assert "1011" in str(failure), str(failure)


async def test_bad_key_is_an_authentication_error_without_the_key(clips: list[Path], tmp_path: Path) -> None:
    async def refuses(peer: Peer) -> None:
        start = json.loads(await peer.connection.recv())
        error = {
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "message": f"Incorrect API key provided: {CANARY}.",
            "client_event_id": start["event_id"],
        }
        await peer.send({"type": "error", "error": error, "client_event_id": start["event_id"]})
        await peer.connection.close(3000, "invalid_api_key")

    async with live_server(refuses) as server:
        failure = await _first_turn_fails(server, tmp_path, clips[0], AuthenticationError)
    assert CANARY not in str(failure) and CANARY not in repr(failure.args)
    assert "invalid_api_key" in str(failure)


def test_the_entry_point_serves_openai_live(tmp_path: Path) -> None:
    assert "openai:live" not in registry._BUILTINS  # found through the rtflow.providers entry-point group
    assert "openai:live" in registry.known_kinds()
    provider = create_provider(ProviderInfo(id="openai:live:gpt-live", label="live", base_dir=tmp_path))
    assert isinstance(provider, LiveProvider) and provider.info.model == "gpt-live"
    assert provider.url == "wss://api.openai.com/v1/live/sessions"
