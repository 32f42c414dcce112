"""The tool-round loop both providers share: read a reply, run the calls it asks for, send the results, repeat.

The loop owns everything that does not depend on the wire: counting rounds against `max_tool_iterations` (and
the ToolError past it), running each round's calls with `ToolRunner.run_all`, timing the rounds, and collecting
the `ToolCall` records, the replies' text and their usage. A provider passes two coroutine functions for the
wire-specific part: one that asks for and reads the turn's first reply, and one that sends a round's results
and reads the reply that follows. Chat appends the calls and results to the conversation and posts it again;
Realtime sends `function_call_output` items and `response.create` on its socket.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from rtflow.errors import ToolError
from rtflow.messages import ToolCall, Usage
from rtflow.providers.tools import PendingCall, ToolRunner

__all__ = ["ModelReply", "ToolRounds", "run_tool_rounds"]


class ModelReply(Protocol):
    """What the loop reads from one reply of the model (Chat's `ChatReply`, Realtime's `ResponseResult`)."""

    @property
    def text(self) -> str:
        """The reply's text (empty when it only called tools)."""
        ...

    @property
    def calls(self) -> list[PendingCall]:
        """The function calls the reply asks for; none ends the turn."""
        ...

    @property
    def usage(self) -> Usage:
        """The reply's token counts."""
        ...


ReplyT = TypeVar("ReplyT", bound=ModelReply)


@dataclass
class ToolRounds:
    """A turn's replies taken together."""

    text: str
    """The replies' non-empty texts, one per line."""
    tool_calls: list[ToolCall]
    """Every call the model made and its outcome, in the order made."""
    usage: Usage
    """Token counts summed over every reply."""
    round_ms: list[float]
    """Duration of each tool round: its handlers plus the reply that follows."""


async def run_tool_rounds(
    first_reply: Callable[[], Awaitable[ReplyT]],
    next_reply: Callable[[ReplyT, list[ToolCall]], Awaitable[ReplyT]],
    runner: ToolRunner,
    *,
    max_rounds: int,
    provider_label: str,
) -> ToolRounds:
    """Read replies until one asks for no function call, running each round's calls in between.

    `first_reply()` asks for the turn's first reply and reads it. `next_reply(reply, outcomes)` sends the
    outcomes of `reply`'s calls and reads the reply that follows. A reply that still calls tools after
    `max_rounds` rounds raises `ToolError`, before its calls run.
    """
    texts: list[str] = []
    tool_calls: list[ToolCall] = []
    usage = Usage()
    round_ms: list[float] = []
    reply = await first_reply()
    while True:
        usage = usage + reply.usage
        if reply.text:
            texts.append(reply.text)
        if not reply.calls:
            return ToolRounds(text="\n".join(texts), tool_calls=tool_calls, usage=usage, round_ms=round_ms)
        if len(round_ms) >= max_rounds:
            raise ToolError(
                f"the model kept calling tools after {max_rounds} rounds (max_tool_iterations)",
                provider=provider_label,
            )
        round_started = time.perf_counter()
        outcomes = await runner.run_all(reply.calls)
        tool_calls.extend(outcomes)
        reply = await next_reply(reply, outcomes)
        round_ms.append((time.perf_counter() - round_started) * 1000)
