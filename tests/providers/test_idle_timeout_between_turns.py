"""The server's idle timeout firing between turns (the caller silent after an answer, before the next turn is sent),
against the simulator: the prompt it draws is the next turn's idle timeout, never that turn's answer."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.providers.realtime_outcomes import ResponseMatcher
from rtflow.providers.realtime_wire import OutputItemAdded, ResponseCreated
from rtflow.sim import SimConfig, SimServer
from rtflow.sim.idle_timeout import IDLE_PROMPT


@pytest.mark.anyio
async def test_a_prompt_drawn_between_turns_is_not_the_next_answer() -> None:
    """The next turn answers its own question; the prompt is kept in its `idle_timeouts`, and the turn after it is
    answered in step as well."""
    async with SimServer(SimConfig()) as sim:
        info = ProviderInfo(
            id="openai:realtime:gpt-realtime",
            label="voice",
            config={
                "api_base_url": sim.http_base_url,
                "api_key": "sk-sim",
                "modalities": ["text"],
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                "idle_timeout_ms": 400,
            },
            base_dir=Path.cwd(),
        )
        session = RealtimeProvider(info).session("pause")
        history: list[Message] = []
        outputs = []
        for index, question in enumerate(["first question", "second question", "third question"]):
            history.append(Message.of("user", question))
            output = await session.send(TurnRequest(conversation_id="pause", turn_index=index, messages=history))
            history.append(Message.of("assistant", output.text))
            outputs.append(output)
            if index == 0:
                await anyio.sleep(0.6)  # silent for longer than one idle timeout, shorter than two
        await session.aclose()
    first, second, third = outputs
    assert first.text.startswith('You said: "first question"')
    assert first.idle_timeouts == []
    assert second.text.startswith('You said: "second question"'), second.text
    assert IDLE_PROMPT not in second.text
    (fired,) = second.idle_timeouts
    assert fired.endswith(f"; the agent prompted: {IDLE_PROMPT!r}")
    assert third.text.startswith('You said: "third question"'), third.text


def test_the_matcher_sets_the_prompt_after_an_idle_timeout_apart() -> None:
    """After an idle timeout the next response started is the prompt, its events by item as well; the one after it
    is the turn's."""
    matcher = ResponseMatcher(set())
    matcher.idle_timeout()
    assert not matcher.created(ResponseCreated("resp_prompt", out_of_band=False))
    matcher.item_added(OutputItemAdded("resp_prompt", "item_prompt"))
    assert matcher.prompts(None, "item_prompt")
    assert not matcher.prompts("resp_turn", None)
    assert matcher.created(ResponseCreated("resp_turn", out_of_band=False))
    assert matcher.owns("resp_turn", None)
    assert matcher.ignored == {}


def test_a_prompt_seen_starting_by_an_earlier_reader_stays_the_prompt() -> None:
    """A reader told the prompt's response takes the next response as the turn's."""
    matcher = ResponseMatcher(set(), prompting=True, prompt_id="resp_prompt")
    assert matcher.prompts("resp_prompt", None)
    assert matcher.created(ResponseCreated("resp_turn", out_of_band=False))
