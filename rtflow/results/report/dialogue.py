"""A simulated dialogue as the views tell it: who said what, why it stopped, and the conversation's verdicts.

A `simulate:` entry leaves one turn record per agent turn it produced, each with a `DialogueTurn` (the caller's
line); the last one also carries why the dialogue stopped, what met the stop condition (`stop_detail`: the tool
the agent called, or the judge's condition) and, as its assertions, the conversation-level verdicts. The HTML
report and `rtflow show` both read that from here, so they say the same thing in the same words.

Everything comes from the records, never from the run's flow file (which may have changed since the run). The
records of older runs have no `stop_detail`: a tool stop is then named by the last turn's tool when it called
exactly one, and otherwise the reason is said without what met it rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rtflow.results.records import AssertionResult, TurnRecord, TurnStatus

__all__ = ["DialogueEnding", "dialogue_ending", "stop_words"]


@dataclass(frozen=True)
class DialogueEnding:
    """How a dialogue ended: the words for its stop reason and the conversation's verdicts."""

    stop_reason: str
    """As recorded: `phrase`, `tool`, `judge`, `max_turns`, `max_duration` (or a newer one, said as it is)."""
    words: str
    """The stop reason in words (`the agent called get_weather`)."""
    verdicts: tuple[AssertionResult, ...]
    """The conversation-level assertion results: the assertions of the record that carries the ending."""
    status: TurnStatus
    """That record's status: the conversation's verdict as a whole."""
    turn_index: int
    """The 0-based turn index of that record (its verdicts are shown at the end, not on the turn)."""
    agent_turns: int
    """How many agent turns the dialogue produced."""


def _tools_called(turn: TurnRecord) -> list[str]:
    """The distinct names of the tools the agent called on `turn`, in order."""
    calls = turn.output.tool_calls if turn.output is not None else []
    return list(dict.fromkeys(call.name for call in calls))


def _tool_words(last: TurnRecord, detail: str | None) -> str:
    """Which tool stopped the dialogue: as recorded, else (an older run) the one tool the last turn called;
    never a guess between several."""
    if detail is None:
        called = _tools_called(last)
        detail = called[0] if len(called) == 1 else None
    return f"the agent called {detail}" if detail is not None else "the agent called its stop tool"


def stop_words(reason: str, last: TurnRecord) -> str:
    """`reason` (as recorded on the dialogue's last turn `last`) in words, for a person."""
    detail = last.dialogue.stop_detail if last.dialogue is not None else None
    if reason == "phrase":
        return "the caller said the stop phrase"
    if reason == "tool":
        return _tool_words(last, detail)
    if reason == "judge":
        return f"the judge found: {detail}" if detail is not None else "the judge found its stop condition met"
    if reason == "max_turns":
        return "reached max_turns"
    if reason == "max_duration":
        return "reached max_duration"
    if reason == "replay_ended":
        return "the replayed caller had no more lines"
    if reason == "caller_error":
        return "the caller was out of role"
    return f"stopped: {reason}"


def dialogue_ending(turns: Sequence[TurnRecord]) -> DialogueEnding | None:
    """How the dialogue among one conversation's `turns` (in turn order) ended; None when the conversation has
    no dialogue or its dialogue has not ended (an interrupted run, or a dialogue that failed)."""
    last = next((turn for turn in reversed(turns) if turn.dialogue and turn.dialogue.stop_reason), None)
    if last is None or last.dialogue is None or last.dialogue.stop_reason is None:
        return None
    reason = last.dialogue.stop_reason
    agent_turns = sum(1 for turn in turns if turn.dialogue is not None and turn.output is not None)
    return DialogueEnding(
        stop_reason=reason,
        words=stop_words(reason, last),
        verdicts=tuple(last.assertions),
        status=last.status,
        turn_index=last.turn_index,
        agent_turns=agent_turns,
    )
