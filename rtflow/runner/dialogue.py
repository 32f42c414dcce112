"""A simulated conversation: a caller model with a persona and a goal talks to the agent until a stop condition.

The plan holds one `DialogueNode` for a thread's `simulate:` entry; running it unfolds the dialogue turn by turn:
the caller model is asked for its next line (it sees the conversation with the roles swapped: the agent's
answers as `user`, its own lines as `assistant`), the line goes to the agent as the user's message on the
conversation's own session (with the run's limits, retries and deadline, like a scripted turn), and the answer
is stored at once as a turn record of its own (`<conversation>/<n>`, the caller's line in `vars.caller`). So a
crash loses no finished generated turn, and `--resume` continues the dialogue from the stored ones with the same
history, asking neither model for them again.

After each agent turn the stop conditions are checked in order (the caller's stop phrase is checked before its
line is sent); the last generated turn carries the conversation-level verdict (`rtflow.results.assertions.
conversation`) and why the dialogue ended.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rtflow.messages import Message, ToolCall, TurnOutput

if TYPE_CHECKING:
    from rtflow.flow.spec import ProviderSpec
    from rtflow.flow.spec.dialogue import SimulateSpec

__all__ = [
    "CALLER_CHECK_RUBRIC",
    "DialogueState",
    "Exchange",
    "caller_key",
    "caller_messages",
    "caller_system_prompt",
    "line_out_of_role",
    "obvious_persona_break",
    "says_stop_phrase",
]

CALLER_CHECK_RUBRIC = "The caller keeps to its persona and goal and never speaks as the agent"
"""What the grader is asked about the caller, over its persona, goal and the transcript (`caller_check_text`)."""
_AGENT_LABEL = re.compile(r"^\s*(agent|assistant|support|representative|system)\s*:", re.IGNORECASE)


def caller_key(spec: ProviderSpec) -> str:
    """One caller provider per id and config, however many dialogues use it."""
    return f"{spec.id} {json.dumps(spec.config, sort_keys=True, default=str)}"


def caller_system_prompt(persona: str, goal: str, stop_phrase: str) -> str:
    """What the caller model is told. The `<persona>` and `<goal>` tags are a contract: the simulator plays a
    caller from them (see `rtflow.sim.model`)."""
    return (
        "You are the caller in a conversation with an agent. Stay in your role: speak only as the caller, one short"
        " turn at a time, never as the agent.\n"
        f"<persona>{persona}</persona>\n"
        f"<goal>{goal}</goal>\n"
        f"When your goal is reached, or cannot be reached, say exactly: {stop_phrase}"
    )


@dataclass(frozen=True)
class Exchange:
    """One turn of the conversation: what the caller said (empty when the agent spoke first), and the answer."""

    caller: str
    agent: str
    output: TurnOutput | None = None
    """The agent's whole output, for a generated turn (None for a scripted turn before the dialogue)."""


@dataclass
class DialogueState:
    """Where a dialogue stands: the conversation so far (scripted turns first) and when it started."""

    spec: SimulateSpec
    persona: str
    goal: str
    exchanges: list[Exchange] = field(default_factory=list)
    generated: int = 0
    """Agent turns the dialogue produced (restored ones included)."""
    started: float = field(default_factory=time.monotonic)
    stop_detail: str | None = None
    """What met the stop condition: the tool called, or the judge's condition."""
    out_of_role: tuple[str, str] | None = None
    """A caller line that was plainly out of role, and why: the dialogue stopped there, the line unsent."""

    def transcript(self) -> str:
        """Who said what, one line each."""
        lines: list[str] = []
        for exchange in self.exchanges:
            if exchange.caller:
                lines.append(f"Caller: {exchange.caller}")
            lines.append(f"Agent: {exchange.agent}")
        return "\n".join(lines)

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the agent made during the dialogue, in order."""
        return [call for exchange in self.exchanges if exchange.output for call in exchange.output.tool_calls]

    def outputs(self) -> list[TurnOutput]:
        return [exchange.output for exchange in self.exchanges if exchange.output is not None]

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def caller_messages(state: DialogueState) -> list[Message]:
    """The caller model's request: its instructions, then the conversation with the roles swapped."""
    messages = [Message.of("system", caller_system_prompt(state.persona, state.goal, state.spec.stop_phrase))]
    for exchange in state.exchanges:
        if exchange.caller:
            messages.append(Message.of("assistant", exchange.caller))
        messages.append(Message.of("user", exchange.agent))
    return messages


def says_stop_phrase(line: str, state: DialogueState) -> bool:
    """Whether the caller's line says one of the stop phrases (it then ends the dialogue, unsent)."""
    return any(stop.phrase is not None and stop.phrase in line for stop in state.spec.stop)


def line_out_of_role(line: str, previous_answer: str | None, number: int) -> str | None:
    """Why a caller line is plainly not the caller's, found without asking a model (None: nothing plain): spoken
    with the agent's label (`Agent: ...`), a word-for-word repeat of the agent's last answer, or nothing at all."""
    if _AGENT_LABEL.match(line):
        return f"turn {number}: the caller spoke as the agent ({line[:80]!r})"
    if previous_answer is not None and line.strip() and line.strip() == previous_answer.strip():
        return f"turn {number}: the caller repeated the agent's answer word for word"
    if not line.strip() and previous_answer is not None:
        return f"turn {number}: the caller said nothing"
    return None


def obvious_persona_break(state: DialogueState) -> str | None:
    """The first generated turn whose caller line is plainly out of role (`line_out_of_role`), if any."""
    previous_answer: str | None = None
    for number, exchange in enumerate(state.exchanges, start=1):
        if exchange.output is not None:  # a generated turn (a scripted opening is the flow's, not the caller's)
            broken = line_out_of_role(exchange.caller, previous_answer, number)
            if broken is not None:
                return broken
        previous_answer = exchange.agent
    return None


def caller_check_text(state: DialogueState) -> str:
    """What the grader reads for the caller check: who the caller was meant to be, then the conversation."""
    return f"Persona: {state.persona}\nGoal: {state.goal}\n\n{state.transcript()}"
