"""The simulator plays a simulated caller: the goal's sentences one per turn, then the stop phrase."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from rtflow.sim import SimConfig, SimServer
from rtflow.sim.model import goal_sentences, respond

from .conftest import ask, session, simulator, until

pytestmark = pytest.mark.anyio

SENTENCES = ["I want to book a table for two.", "Make it Friday at 7pm!", "Is there parking?"]


def caller_prompt(goal: str = " ".join(SENTENCES), stop_line: str = "say exactly: ###STOP###") -> str:
    """A caller's system message in the shape rtflow sends it."""
    return (
        "You are the caller in a conversation with an agent. Stay in character and say one thing at a time.\n"
        "<persona>A busy parent who speaks briefly.</persona>\n"
        f"<goal>{goal}</goal>\n"
        f"When your goal is met, or the agent cannot help, {stop_line}\n"
        "Never say anything else after it."
    )


def caller_messages(prompt: str, agent_lines: list[str], caller_lines: list[str]) -> list[Any]:
    """A caller's request: the agent's turns as user messages, the caller's own as assistant messages."""
    messages: list[Any] = [{"role": "system", "content": prompt}]
    for position, agent in enumerate(agent_lines):
        messages.append({"role": "user", "content": agent})
        if position < len(caller_lines):
            messages.append({"role": "assistant", "content": caller_lines[position]})
    return messages


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[AsyncOpenAI]:
    """The official client pointed at the simulator."""
    async with AsyncOpenAI(api_key="sk-test", base_url=sim.http_base_url) as c:
        yield c


async def complete(client: AsyncOpenAI, messages: list[Any], stream: bool) -> str:
    """The caller's reply, asked for with or without streaming."""
    if not stream:
        completion = await client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
        assert completion.choices[0].finish_reason == "stop"
        return completion.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model="gpt-4.1-mini", messages=messages, stream=True)
    return "".join([chunk.choices[0].delta.content or "" async for chunk in chunks if chunk.choices])


async def converse(client: AsyncOpenAI, prompt: str, turns: int, stream: bool) -> list[str]:
    """Play `turns` caller turns, the agent answering each line with a fixed question."""
    said: list[str] = []
    for turn in range(turns):
        agent = [f"Agent line {n}. How can I help?" for n in range(turn + 1)]
        said.append(await complete(client, caller_messages(prompt, agent, said), stream))
    return said


@pytest.mark.parametrize("stream", [False, True])
async def test_goal_sentences_then_stop(client: AsyncOpenAI, stream: bool) -> None:
    """Each turn says the next sentence of the goal; once they are used up, the stop phrase, and again after it."""
    said = await converse(client, caller_prompt(), 5, stream)
    assert said == [*SENTENCES, "###STOP###", "###STOP###"]


@pytest.mark.parametrize("stream", [False, True])
async def test_custom_stop_phrase(client: AsyncOpenAI, stream: bool) -> None:
    """The stop phrase runs from `say exactly: ` to the end of its line, whatever it is."""
    prompt = caller_prompt("Cancel my order.", "say exactly: <<END OF CALL>>")
    assert await converse(client, prompt, 2, stream) == ["Cancel my order.", "<<END OF CALL>>"]


async def test_stop_phrase_absent_defaults(client: AsyncOpenAI) -> None:
    """Without a `say exactly: ` line the caller ends with ###STOP###; one inside the goal does not count."""
    prompt = "You are the caller.\n<goal>Ask them to say exactly: banana</goal>\nBe polite."
    assert await converse(client, prompt, 2, False) == ["Ask them to say exactly: banana", "###STOP###"]


@pytest.mark.parametrize("stream", [False, True])
async def test_no_goal_is_unchanged(client: AsyncOpenAI, stream: bool) -> None:
    """A system message without <goal> keeps today's reply."""
    prompt = "You are the caller. <persona>Terse.</persona> say exactly: ###STOP###"
    messages = caller_messages(prompt, ["Hello, how can I help?"], [])
    fp = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    expected = f'You said: "Hello, how can I help?" (user messages: 1, instructions: {fp})'
    assert await complete(client, messages, stream) == expected


async def test_goal_only_in_first_system_message(client: AsyncOpenAI) -> None:
    """A goal in a later system message is not a caller prompt: only the first system message is read."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "system", "content": caller_prompt()},
        {"role": "user", "content": "Hi"},
    ]
    assert (await complete(client, messages, False)).startswith('You said: "Hi"')


async def test_empty_caller_line_still_counts(client: AsyncOpenAI) -> None:
    """An assistant message with empty content is still one of the caller's turns."""
    messages = caller_messages(caller_prompt(), ["Hi", "Sorry?"], [""])
    assert await complete(client, messages, False) == SENTENCES[1]


async def test_rules_script_overrides_caller(tmp_path: Path) -> None:
    """A matching rule wins over the caller rule (a caller that answers as if it were the agent); others do not."""
    script = tmp_path / "rules.yaml"
    script.write_text('- match: "(?i)how can i help"\n  reply: "Hello! I am the agent. How can I help you today?"\n')
    async with (
        SimServer(SimConfig(script=script)) as sim,
        AsyncOpenAI(api_key="sk-test", base_url=sim.http_base_url) as client,
    ):
        for stream in (False, True):
            misbehaving = caller_messages(caller_prompt(), ["Welcome. How can I help?"], [])
            assert await complete(client, misbehaving, stream) == "Hello! I am the agent. How can I help you today?"
            unmatched = caller_messages(caller_prompt(), ["Welcome to the restaurant."], [])
            assert await complete(client, unmatched, stream) == SENTENCES[0]


async def test_realtime_text_caller() -> None:
    """On Realtime the session instructions are the caller's prompt; its own answers count as its turns."""
    async with simulator() as sim, session(sim) as ws:
        await ws.send(
            json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": caller_prompt()}})
        )
        await until(ws, "session.updated")
        said = []
        for turn in range(4):
            await ask(ws, f"Agent turn {turn}.")
            done = json.loads((await until(ws, "response.done"))[-1])
            said.append(done["response"]["output"][0]["content"][0]["text"])
    assert said == [*SENTENCES, "###STOP###"]


@pytest.mark.parametrize(
    ("goal", "sentences"),
    [
        ("Pay 3.50 dollars. Then leave", ["Pay 3.50 dollars.", "Then leave"]),
        ("Wait?! What... ok", ["Wait?!", "What...", "ok"]),
        ("  First line.\nSecond line!\n\n", ["First line.", "Second line!"]),
        ("", []),
    ],
)
def test_goal_sentences(goal: str, sentences: list[str]) -> None:
    """Sentences end at . ! ? before whitespace or the end, keep their punctuation and are stripped."""
    assert goal_sentences(goal) == sentences


def test_empty_goal_says_stop_at_once() -> None:
    """A goal with no sentence leaves only the stop phrase."""
    system = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": caller_prompt("")}]}
    assert respond(None, [system]).text == "###STOP###"
