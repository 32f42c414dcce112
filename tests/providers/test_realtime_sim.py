"""The Realtime provider against the local simulator, in both dialects: turns, history, tools, failures."""

from __future__ import annotations

import hashlib
import time
import wave
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from rtflow.errors import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    ToolError,
)
from rtflow.messages import ContentPart, Message, TurnOutput, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider, RealtimeSession
from rtflow.sim import Fault, SimConfig, SimServer

DIALECTS = pytest.mark.parametrize("dialect", ["ga", "beta"])
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}


def _provider(sim: SimServer, dialect: str, base_dir: Path | None = None, **config: Any) -> RealtimeProvider:
    info = ProviderInfo(
        id="openai:realtime:gpt-realtime",
        label="realtime",
        config={"api_base_url": sim.http_base_url, "api_key": "sk-sim", "dialect": dialect, **config},
        base_dir=base_dir or Path.cwd(),
    )
    return RealtimeProvider(info)


def _fingerprint(*texts: str) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:8] if texts else "none"


def _said(text: str, users: int, fingerprint: str = "none") -> str:
    return f'You said: "{text}" (user messages: {users}, instructions: {fingerprint})'


async def _conversation(session: RealtimeSession, conversation_id: str, questions: list[str]) -> list[TurnOutput]:
    """Send the questions as successive turns, each request carrying the whole conversation so far."""
    history: list[Message] = []
    outputs: list[TurnOutput] = []
    for index, question in enumerate(questions):
        history.append(Message.of("user", question))
        output = await session.send(TurnRequest(conversation_id=conversation_id, turn_index=index, messages=history))
        history.append(Message.of("assistant", output.text))
        outputs.append(output)
    return outputs


@DIALECTS
@pytest.mark.anyio
async def test_single_turn_reply_usage_and_timings(dialect: str) -> None:
    """One turn: config instructions and a system message both reach the model, with usage and timings."""
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect, instructions="Be brief.")
        session = provider.session("single")
        request = TurnRequest(
            conversation_id="single",
            turn_index=0,
            messages=[Message.of("system", "You are a travel agent."), Message.of("user", "Hello there")],
        )
        output = await session.send(request)
        await session.aclose()
        await session.aclose()  # closing twice is harmless
    assert output.text == _said("Hello there", 1, _fingerprint("Be brief.", "You are a travel agent."))
    assert output.usage.output_tokens > 0 and output.usage.total_tokens > 0
    assert output.cost is not None and output.cost > 0
    metrics = output.metrics
    assert metrics.connect_ms is not None and metrics.first_delta_ms is not None and metrics.total_ms is not None
    assert metrics.first_delta_ms <= metrics.total_ms


@DIALECTS
@pytest.mark.anyio
async def test_twenty_concurrent_conversations_each_hold_only_their_own_history(dialect: str) -> None:
    """20 three-turn conversations at once: each third reply shows 3 user messages and its own question."""
    results: dict[int, list[TurnOutput]] = {}
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect)

        async def run(number: int) -> None:
            session = provider.session(f"conv-{number}")
            questions = [f"Conversation {number} question {turn}" for turn in (1, 2, 3)]
            try:
                results[number] = await _conversation(session, f"conv-{number}", questions)
            finally:
                await session.aclose()

        async with anyio.create_task_group() as group:
            for number in range(20):
                group.start_soon(run, number)
    assert len(results) == 20
    for number, outputs in results.items():
        assert outputs[2].text == _said(f"Conversation {number} question 3", 3)
        # One socket per conversation: only the first turn connected, later turns sent only what was new.
        assert outputs[0].metrics.connect_ms is not None
        assert outputs[1].metrics.connect_ms is None and outputs[2].metrics.connect_ms is None


@DIALECTS
@pytest.mark.anyio
async def test_socket_dropped_between_turns_replays_history(dialect: str) -> None:
    """A socket that dies between turns is replaced; the whole history is replayed and the reply proves it."""
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect)
        session = provider.session("drop")
        history = [Message.of("system", "Rules."), Message.of("user", "First question")]
        first = await session.send(TurnRequest(conversation_id="drop", turn_index=0, messages=history))
        assert session._socket is not None
        await session._socket.close()  # the server side now sees a closed connection
        history += [Message.of("assistant", first.text), Message.of("user", "Second question")]
        second = await session.send(TurnRequest(conversation_id="drop", turn_index=1, messages=history))
        await session.aclose()
    assert second.text == _said("Second question", 2, _fingerprint("Rules."))
    assert second.metrics.connect_ms is not None


@DIALECTS
@pytest.mark.anyio
async def test_dropped_mid_turn_is_retryable_and_the_retry_replays(dialect: str) -> None:
    """A close mid-response is a retryable connection error with its code; the next attempt replays history."""
    fault = Fault(kind="close", endpoint="realtime", match="Second", times=1, close_code=1011)
    async with SimServer(SimConfig(faults=[fault])) as sim:
        session = _provider(sim, dialect).session("mid")
        history = [Message.of("user", "First question")]
        first = await session.send(TurnRequest(conversation_id="mid", turn_index=0, messages=history))
        history += [Message.of("assistant", first.text), Message.of("user", "Second question")]
        request = TurnRequest(conversation_id="mid", turn_index=1, messages=history)
        with pytest.raises(ProviderConnectionError) as caught:
            await session.send(request)
        assert caught.value.retryable and caught.value.code == "1011"
        retried = await session.send(request)
        await session.aclose()
    assert retried.text == _said("Second question", 2)


@DIALECTS
@pytest.mark.anyio
async def test_diverged_history_reconnects_and_replays(dialect: str) -> None:
    """When the requested history is not an extension of what the session holds, it starts over."""
    async with SimServer(SimConfig()) as sim:
        session = _provider(sim, dialect).session("diverge")
        await session.send(TurnRequest(conversation_id="diverge", turn_index=0, messages=[Message.of("user", "A")]))
        rewritten = [Message.of("user", "B"), Message.of("assistant", "x"), Message.of("user", "C")]
        output = await session.send(TurnRequest(conversation_id="diverge", turn_index=1, messages=rewritten))
        await session.aclose()
    assert output.text == _said("C", 2) and output.metrics.connect_ms is not None


@DIALECTS
@pytest.mark.anyio
async def test_tool_calls_sync_async_raising_and_timeout(dialect: str, tools_dir: Path) -> None:
    """Handlers run (sync in a thread, async awaited); failures and timeouts are recorded and told to the model."""
    handlers = {name: f"file://tools.py:{name}" for name in ("get_weather", "async_lookup", "explode", "sleepy")}
    tools = [WEATHER_TOOL, _tool("async_lookup"), _tool("explode"), _tool("sleepy")]
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect, tools_dir, tools=tools, function_handlers=handlers, tool_timeout="300ms")
        session = provider.session("tools")
        outputs = await _conversation(
            session,
            "tools",
            ["What is the weather in Kyoto?", "Please lookup temples", "Now explode please", "Be sleepy now"],
        )
        await session.aclose()
    weather, lookup, explode, sleepy = outputs
    assert weather.tool_calls[0].name == "get_weather" and weather.tool_calls[0].error is None
    assert weather.text == 'Tool get_weather returned: {"city": "Kyoto", "temp_c": 21}'
    assert len(weather.metrics.tool_rounds_ms) == 1 and weather.usage.total_tokens > 0
    assert lookup.tool_calls[0].output == "found " and lookup.text.startswith("Tool async_lookup returned")
    explode_call = explode.tool_calls[0]
    assert explode_call.error is not None and "ValueError: the weather service is down" in explode_call.error
    assert "Traceback" in explode_call.error and "Traceback" not in (explode_call.output or "")
    assert "tools.py:explode raised ValueError" in explode.text
    assert sleepy.tool_calls[0].error == "tool 'sleepy' handler tools.py:sleepy did not return within 0.3 s"
    assert "did not return within" in sleepy.text


@DIALECTS
@pytest.mark.anyio
async def test_tool_without_handler_and_iteration_cap(dialect: str, tools_dir: Path) -> None:
    """A tool with no handler gets an error output; a turn past max_tool_iterations fails with ToolError."""
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect, tools_dir, tools=[WEATHER_TOOL])
        session = provider.session("nohandler")
        output = await _conversation(session, "nohandler", ["weather in Oslo?"])
        await session.aclose()
        assert "no handler" in (output[0].tool_calls[0].error or "") and "no handler" in output[0].text

        capped = _provider(
            sim,
            dialect,
            tools_dir,
            tools=[WEATHER_TOOL],
            max_tool_iterations=0,
            function_handlers={"get_weather": "file://tools.py:get_weather"},
        )
        capped_session = capped.session("capped")
        with pytest.raises(ToolError, match="max_tool_iterations"):
            await _conversation(capped_session, "capped", ["weather in Oslo?"])
        await capped_session.aclose()


@DIALECTS
@pytest.mark.anyio
async def test_failed_response_with_rate_limit_is_a_rate_limit_error(dialect: str) -> None:
    """`response.done` failed with a rate-limit error becomes a retryable RateLimitError."""
    async with SimServer(SimConfig(faults=[Fault(kind="rate_limited", endpoint="realtime", times=1)])) as sim:
        session = _provider(sim, dialect).session("rl")
        with pytest.raises(RateLimitError) as caught:
            await _conversation(session, "rl", ["hi"])
        assert caught.value.retryable and caught.value.code == "rate_limit_exceeded"
        assert (await _conversation(session, "rl", ["hi"]))[0].text == _said("hi", 1)
        await session.aclose()


@DIALECTS
@pytest.mark.anyio
async def test_error_event_is_a_server_error(dialect: str) -> None:
    """An `error` event of type server_error becomes a retryable ServerError."""
    async with SimServer(SimConfig(faults=[Fault(kind="server_error", endpoint="realtime", times=1)])) as sim:
        session = _provider(sim, dialect).session("err")
        with pytest.raises(ServerError) as caught:
            await _conversation(session, "err", ["hi"])
        await session.aclose()
    assert caught.value.retryable and "server_error" in str(caught.value)


@DIALECTS
@pytest.mark.anyio
async def test_handshake_refusals(dialect: str) -> None:
    """A wrong key names the key's source, 403 explains its likely causes, 429 carries Retry-After; none leak it."""
    faults = [
        Fault(kind="status", endpoint="realtime", status=403, times=1),
        Fault(kind="status", endpoint="realtime", status=429, retry_after=7, times=1),
    ]
    async with SimServer(SimConfig(faults=faults, require_key="sk-right")) as sim:
        right = _provider(sim, dialect, api_key="sk-right")
        with pytest.raises(AuthenticationError) as forbidden:
            await _conversation(right.session("a"), "a", ["hi"])
        with pytest.raises(RateLimitError) as limited:
            await _conversation(right.session("b"), "b", ["hi"])
        wrong = _provider(sim, dialect, api_key="sk-wrong-key-value")
        with pytest.raises(AuthenticationError) as unauthorized:
            await _conversation(wrong.session("c"), "c", ["hi"])
    assert forbidden.value.status == 403 and not forbidden.value.retryable
    assert "access to this model" in str(forbidden.value) and "WebSockets" in str(forbidden.value)
    assert limited.value.retry_after == 7.0 and limited.value.retryable and "retry after 7 s" in str(limited.value)
    # As live, a wrong key is not refused at the handshake: an `error` event (invalid_api_key), then close 3000.
    assert unauthorized.value.code == "invalid_api_key" and not unauthorized.value.retryable
    assert "config api_key" in str(unauthorized.value)
    assert "sk-wrong-key-value" not in str(unauthorized.value)


@DIALECTS
@pytest.mark.anyio
async def test_malformed_frame_and_stall(dialect: str) -> None:
    """A frame that is not JSON is skipped and noted; a server that stops talking is a ProviderTimeoutError."""
    faults = [
        Fault(kind="malformed", endpoint="realtime", match="garbled", times=1),
        Fault(kind="stall", endpoint="realtime", match="silent", times=1),
    ]
    async with SimServer(SimConfig(faults=faults)) as sim:
        provider = _provider(sim, dialect, websocket_timeout="300ms")
        session = provider.session("m")
        outputs = await _conversation(session, "m", ["garbled please"])
        assert outputs[0].text == _said("garbled please", 1)
        assert any("not JSON" in warning for warning in session.protocol_warnings)
        await session.aclose()
        started = time.perf_counter()
        with pytest.raises(ProviderTimeoutError):
            await _conversation(provider.session("s"), "s", ["silent please"])
        assert time.perf_counter() - started < 5


@pytest.mark.anyio
async def test_connection_refused_is_retryable() -> None:
    """Nothing listening on the port is a retryable ProviderConnectionError."""
    info = ProviderInfo(
        id="openai:realtime:gpt-realtime",
        label="realtime",
        config={"api_base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
    )
    with pytest.raises(ProviderConnectionError) as caught:
        await (
            RealtimeProvider(info)
            .session("x")
            .send(TurnRequest(conversation_id="x", turn_index=0, messages=[Message.of("user", "hi")]))
        )
    assert caught.value.retryable


def _write_wav(path: Path, seconds: float, rate: int, channels: int) -> None:
    frames = int(seconds * rate)
    tone = (np.sin(np.arange(frames) * 2 * np.pi * 440 / rate) * 12000).astype("<i2")
    data = np.repeat(tone[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(data.tobytes())


@DIALECTS
@pytest.mark.anyio
async def test_audio_in_and_out(dialect: str, tmp_path: Path) -> None:
    """A 16 kHz stereo WAV is resampled and sent; the audio reply is written as a 24 kHz WAV beside its transcript."""
    _write_wav(tmp_path / "question.wav", 1.5, 16000, 2)
    async with SimServer(SimConfig()) as sim:
        provider = _provider(sim, dialect, tmp_path, modalities=["audio"], voice="alloy")
        session = provider.session("audio")
        message = Message(role="user", content=[ContentPart(type="input_audio", file="question.wav")])
        output = await session.send(
            TurnRequest(conversation_id="audio", turn_index=0, messages=[message], artifact_dir=str(tmp_path / "out"))
        )
        await session.aclose()
    assert output.text == _said("audio of 1.50 seconds", 1)
    assert output.audio is not None and output.audio.format == "wav" and output.audio.duration_s > 0.5
    assert output.metrics.first_audio_ms is not None
    with wave.open(output.audio.file, "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (24000, 1, 2)
