"""The Chat provider against the simulator: the same deterministic replies as Realtime, tools, faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtflow.errors import ProviderConnectionError, ProviderTimeoutError, RateLimitError, ServerError
from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_chat import ChatProvider
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.sim import Fault, SimConfig, SimServer


def _config(sim: SimServer, **extra: Any) -> dict[str, Any]:
    return {"api_base_url": sim.http_base_url, "api_key": "sk-sim", **extra}


HISTORY = [
    Message.of("system", "You are terse."),
    Message.of("user", "Where is Kyoto?"),
    Message.of("assistant", "In Japan."),
    Message.of("user", "And Osaka?"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [True, False])
async def test_chat_and_realtime_give_the_same_reply(stream: bool) -> None:
    """The same conversation yields the same reply over Chat (streamed or not) and over Realtime."""
    request = TurnRequest(conversation_id="same", turn_index=1, messages=HISTORY)
    async with SimServer(SimConfig()) as sim:
        chat = ChatProvider(
            ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=_config(sim, stream=stream))
        )
        chat_output = await chat.session("same").send(request)
        await chat.aclose()
        realtime = RealtimeProvider(ProviderInfo(id="openai:realtime:gpt-realtime", label="rt", config=_config(sim)))
        session = realtime.session("same")
        realtime_output = await session.send(request)
        await session.aclose()
    assert chat_output.text == realtime_output.text
    assert '"And Osaka?" (user messages: 2' in chat_output.text
    assert chat_output.usage.total_tokens > 0
    if stream:
        assert chat_output.metrics.first_delta_ms is not None


@pytest.mark.anyio
async def test_chat_tools_against_the_simulator(tools_dir: Path) -> None:
    """The simulator's tool call runs the handler and its result comes back in the reply."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    async with SimServer(SimConfig()) as sim:
        chat = ChatProvider(
            ProviderInfo(
                id="openai:chat:gpt-4.1-mini",
                label="chat",
                config=_config(sim, tools=tools, function_handlers={"get_weather": "file://tools.py:get_weather"}),
                base_dir=tools_dir,
            )
        )
        output = await chat.session("t").send(
            TurnRequest(conversation_id="t", turn_index=0, messages=[Message.of("user", "Weather in Kyoto?")])
        )
        await chat.aclose()
    assert output.tool_calls[0].name == "get_weather"
    assert output.text == 'Tool get_weather returned: {"city": "Kyoto", "temp_c": 21}'


@pytest.mark.anyio
async def test_chat_faults_from_the_simulator() -> None:
    """The simulator's chat 429 and 500 become RateLimitError (with retry_after) and ServerError."""
    faults = [
        Fault(kind="status", endpoint="chat", status=429, retry_after=2, times=1),
        Fault(kind="status", endpoint="chat", status=500, times=1),
    ]
    request = TurnRequest(conversation_id="f", turn_index=0, messages=[Message.of("user", "hi")])
    async with SimServer(SimConfig(faults=faults)) as sim:
        chat = ChatProvider(ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=_config(sim)))
        with pytest.raises(RateLimitError) as limited:
            await chat.session("f").send(request)
        with pytest.raises(ServerError):
            await chat.session("f").send(request)
        output = await chat.session("f").send(request)
        await chat.aclose()
    assert limited.value.retry_after == 2.0
    assert output.text == 'You said: "hi" (user messages: 1, instructions: none)'


@pytest.mark.anyio
async def test_chat_stream_dropped_mid_body_is_a_connection_error() -> None:
    """The simulator dropping a streamed body half-way is a retryable ProviderConnectionError."""
    faults = [Fault(kind="close", endpoint="chat", times=1)]
    request = TurnRequest(conversation_id="d", turn_index=0, messages=[Message.of("user", "tell me a long story")])
    async with SimServer(SimConfig(faults=faults)) as sim:
        chat = ChatProvider(ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=_config(sim)))
        with pytest.raises(ProviderConnectionError) as caught:
            await chat.session("d").send(request)
        assert (await chat.session("d").send(request)).text.startswith('You said: "tell me a long story"')
        await chat.aclose()
    assert caught.value.retryable


@pytest.mark.anyio
async def test_a_timeout_names_its_length_and_its_key() -> None:
    """`request_timeout: 60` is 60 ms (a bare duration is milliseconds): a server that does not answer in time
    fails the turn with the length and the key that set it, so the slip can be seen (it said only "the request
    timed out (ReadTimeout)")."""
    async with SimServer(SimConfig(faults=[Fault(kind="stall", endpoint="chat")])) as sim:
        info = ProviderInfo(id="openai:chat:gpt-4.1-mini", label="chat", config=_config(sim, request_timeout=60))
        provider = ChatProvider(info)
        try:
            with pytest.raises(ProviderTimeoutError) as waited:
                await provider.session("t").send(TurnRequest(conversation_id="t", turn_index=0, messages=HISTORY))
        finally:
            await provider.aclose()
    assert waited.value.retryable
    assert "the request waited longer than 0.06 s (request_timeout) on the server" in str(waited.value)
