"""The official `openai` client holds conversations with the simulator, in both dialects and on Chat."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from rtflow.sim import SimServer

from .conftest import server_events

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[AsyncOpenAI]:
    """The official client pointed at the simulator, closed after the test."""
    async with AsyncOpenAI(api_key="sk-test", websocket_base_url=sim.ws_base_url, base_url=sim.http_base_url) as c:
        yield c


def fp(*texts: str) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:8]


async def collect_response(connection: Any) -> tuple[list[Any], Any]:
    """Events until response.done; returns (events, the response.done event)."""
    events = []
    async for event in connection:
        events.append(event)
        if event.type == "response.done":
            return events, event
        if event.type == "error":
            raise AssertionError(f"unexpected error event: {event}")
    raise AssertionError("connection closed before response.done")


def text_of(events: list[Any], delta_type: str) -> str:
    return "".join(e.delta for e in events if e.type == delta_type)


def user_message(text: str) -> Any:
    """A user text item, in the shape both dialects accept (typed loosely: each client types it its own way)."""
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_ga_text_turn(sim: SimServer, client: AsyncOpenAI) -> None:
    """A GA text turn answers with the contract's reply, streamed as output_text deltas."""
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}
        )
        await connection.conversation.item.create(item=user_message("Hello there"))
        await connection.response.create()
        events, done = await collect_response(connection)
    expected = f'You said: "Hello there" (user messages: 1, instructions: {fp("Be brief.")})'
    assert text_of(events, "response.output_text.delta") == expected
    assert done.response.status == "completed"
    assert done.response.usage.output_tokens == len(expected.split())
    assert [e.type for e in events][:2] == ["session.created", "session.updated"]


async def test_ga_three_turns_hold_three_user_messages(sim: SimServer, client: AsyncOpenAI) -> None:
    """The third reply of one GA session counts exactly three user messages and quotes the third."""
    replies = []
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        for question in ("one", "two", "three"):
            await connection.conversation.item.create(item=user_message(f"question {question}"))
            await connection.response.create()
            events, _ = await collect_response(connection)
            replies.append(text_of(events, "response.output_text.delta"))
    assert replies[2] == 'You said: "question three" (user messages: 3, instructions: none)'


async def test_beta_three_turns_with_system_item(sim: SimServer, client: AsyncOpenAI) -> None:
    """The beta dialect streams response.text.delta and a system item gives the same fingerprint as Chat."""
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as connection:
        await connection.session.update(session={"modalities": ["text"]})
        await connection.conversation.item.create(
            item={"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be kind."}]}
        )
        replies = []
        for question in ("a", "b", "c"):
            await connection.conversation.item.create(item=user_message(question))
            await connection.response.create()
            events, _ = await collect_response(connection)
            replies.append(text_of(events, "response.text.delta"))
    assert replies[2] == f'You said: "c" (user messages: 3, instructions: {fp("Be kind.")})'
    chat = await client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": replies[0]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": replies[1]},
            {"role": "user", "content": "c"},
        ],
    )
    assert chat.choices[0].message.content == replies[2]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_function_call_round_trip(sim: SimServer, client: AsyncOpenAI, dialect: str) -> None:
    """A weather question calls get_weather with the city; the tool's output is quoted in the next reply."""
    manager: Any = (
        client.beta.realtime.connect(model="gpt-realtime")
        if dialect == "beta"
        else client.realtime.connect(model="gpt-realtime")
    )
    async with manager as connection:
        if dialect == "beta":
            await connection.session.update(session={"modalities": ["text"], "tools": [WEATHER_TOOL]})
        else:
            await connection.session.update(
                session={"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER_TOOL]}
            )
        await connection.conversation.item.create(item=user_message("What is the weather in Paris?"))
        await connection.response.create()
        _, done = await collect_response(connection)
        call = done.response.output[0]
        assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", {"city": "Paris"})
        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'}
        )
        await connection.response.create()
        events, _ = await collect_response(connection)
    delta_type = "response.text.delta" if dialect == "beta" else "response.output_text.delta"
    assert text_of(events, delta_type) == 'Tool get_weather returned: {"temp_c": 21}'


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_audio_output_turn(sim: SimServer, client: AsyncOpenAI, dialect: str) -> None:
    """An audio turn streams pcm16 audio deltas whose transcript is the contract's reply."""
    manager: Any = (
        client.beta.realtime.connect(model="gpt-realtime")
        if dialect == "beta"
        else client.realtime.connect(model="gpt-realtime")
    )
    async with manager as connection:
        if dialect == "beta":
            await connection.session.update(session={"modalities": ["text", "audio"], "voice": "alloy"})
        else:
            await connection.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await connection.conversation.item.create(item=user_message("Say hi"))
        await connection.response.create()
        events, done = await collect_response(connection)
    prefix = "response.audio" if dialect == "beta" else "response.output_audio"
    transcript = text_of(events, f"{prefix}_transcript.delta")
    assert transcript == 'You said: "Say hi" (user messages: 1, instructions: none)'
    audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == f"{prefix}.delta")
    assert len(audio) % 2 == 0 and len(audio) > 48_000 * 0.1 * len(transcript.split())
    assert done.response.usage.output_token_details.audio_tokens > 0


async def test_chat_completions_plain_stream_and_tools(sim: SimServer, client: AsyncOpenAI) -> None:
    """Chat answers the same reply with and without streaming, reports usage, and calls tools."""
    messages: list[Any] = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    expected = f'You said: "Hi" (user messages: 1, instructions: {fp("S")})'
    plain = await client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
    assert plain.choices[0].message.content == expected
    assert plain.usage is not None and plain.usage.completion_tokens == len(expected.split())
    stream = await client.chat.completions.create(
        model="gpt-4.1-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == expected and usage is not None and usage.total_tokens == plain.usage.total_tokens
    tool: Any = {"type": "function", "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"}}
    called = await client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[tool]
    )
    tool_call = called.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert called.choices[0].finish_reason == "tool_calls"
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    follow_up: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        called.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"},
    ]
    answered = await client.chat.completions.create(model="gpt-4.1-mini", messages=follow_up, tools=[tool])
    assert answered.choices[0].message.content == "Tool get_weather returned: sunny"
    assert server_events(sim) == []


@pytest.mark.parametrize(("parallel", "names"), [(None, ["get_weather", "get_time"]), (False, ["get_weather"])])
async def test_chat_calls_every_tool_a_line_names_unless_parallel_calls_are_off(
    client: AsyncOpenAI, parallel: bool | None, names: list[str]
) -> None:
    """Chat's default is parallel tool calls: a line that names two tools gets both calls in one reply."""
    time_tool = {**WEATHER_TOOL, "name": "get_time", "description": "The local time in a city."}
    tools: Any = [
        {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in (WEATHER_TOOL, time_tool)
    ]
    extra: Any = {} if parallel is None else {"parallel_tool_calls": parallel}
    completion = await client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "The weather and the time in Oslo?"}],
        tools=tools,
        **extra,
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == names  # type: ignore[union-attr]
    assert all(json.loads(call.function.arguments) == {"city": "Oslo"} for call in calls)  # type: ignore[union-attr]


async def test_ga_reasoning_model_calls_two_tools_in_one_response(sim: SimServer, client: AsyncOpenAI) -> None:
    """gpt-realtime-2 with two tools named in one line: two `function_call` items in one response, the second
    after the first, each with its own call id; every event validates (the `sim` fixture checks at teardown)."""
    time_tool = {**WEATHER_TOOL, "name": "get_time", "description": "The local time in a city."}
    async with client.realtime.connect(model="gpt-realtime-2") as connection:
        session: Any = {"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER_TOOL, time_tool]}
        await connection.session.update(session={**session, "parallel_tool_calls": True})
        await connection.conversation.item.create(item=user_message("The weather and the time in Oslo?"))
        await connection.response.create()
        events, done = await collect_response(connection)
    calls = [item for item in done.response.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_weather", "get_time"]
    assert len({call.call_id for call in calls}) == 2
    assert [e.item.name for e in events if e.type == "response.output_item.added"] == ["get_weather", "get_time"]
