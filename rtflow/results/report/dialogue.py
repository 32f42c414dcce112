"""A simulated dialogue as the views tell it: who said what, why it stopped, and the conversation's verdicts.

A `simulate:` entry leaves one turn record per agent turn it produced, each with a `DialogueTurn` (the caller's
line); the last one also carries why the dialogue stopped and, as its assertions, the conversation-level
verdicts. The HTML report and `rtflow show` both read that from here, so they say the same thing in the same
words.

The records keep the stop reason but not which condition met it. The tool is found on the last turn (the call
that matches a `tool-called` stop of the flow, or the only tool it called). A judge's condition is only written
in the flow, so it is read from the run's flow file, best-effort: plain YAML read, never the flow loader (a
JavaScript flow would run code), and nothing at all when no dialogue stopped by a judge. When the file is gone
or no longer names one, the reason is said without it rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rtflow.results.records import AssertionResult, TurnRecord, TurnStatus

__all__ = ["DialogueEnding", "FlowStops", "StopConditions", "dialogue_ending", "stop_words"]

_FLOW_SUFFIXES = (".yaml", ".yml", ".json")
"""Flow files read for their stop conditions: data, never code."""
_TOOL_KEYS = ("tool-called", "tool_called", "toolCalled")
"""How a flow may spell a `tool-called` stop (its alias, its field name, camelCase)."""


@dataclass(frozen=True)
class StopConditions:
    """The `tool-called` and `judge` stop conditions a thread's `simulate:` entry names, in the order written."""

    tools: tuple[str, ...] = ()
    judges: tuple[str, ...] = ()


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


def _stop_entries(simulate: Any) -> list[Any]:
    """A `simulate:` mapping's stop conditions as a list, however the flow wrote `stop`."""
    stop = simulate.get("stop") if isinstance(simulate, dict) else None
    if stop is None:
        return []
    return stop if isinstance(stop, list) else [stop]


def _conditions(entries: Sequence[Any]) -> StopConditions:
    """The tool names and judge conditions among `entries` (raw YAML stop conditions), the rest skipped."""
    tools: list[str] = []
    judges: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        tool = next((entry[key] for key in _TOOL_KEYS if isinstance(entry.get(key), str)), None)
        if tool is not None:
            tools.append(tool)
        if isinstance(entry.get("judge"), str):
            judges.append(entry["judge"])
    return StopConditions(tuple(tools), tuple(judges))


def _thread_entries(document: dict[str, Any], thread_id: str) -> list[Any]:
    """The turns a flow document gives `thread_id`: its `threads:` list, or the `tests:` whose conversationId it is."""
    threads = document.get("threads")
    if isinstance(threads, dict) and isinstance(threads.get(thread_id), list):
        return list(threads[thread_id])
    tests = document.get("tests")
    if not isinstance(tests, list):
        return []
    return [
        test
        for test in tests
        if isinstance(test, dict)
        and isinstance(test.get("metadata"), dict)
        and test["metadata"].get("conversationId") == thread_id
    ]


class FlowStops:
    """The stop conditions of a run's flow file, per thread; the file is read once, and only when asked."""

    def __init__(self, flow_path: str | None, working_dir: Path | None = None) -> None:
        self._path = (working_dir or Path.cwd()) / flow_path if flow_path else None
        self._document: dict[str, Any] | None = None
        self._read = False

    def _load(self) -> dict[str, Any] | None:
        """The flow as plain data; None when it is not a data file or cannot be read (the views go on without)."""
        if not self._read:
            self._read = True
            path = self._path
            if path is not None and path.suffix.lower() in _FLOW_SUFFIXES:
                try:
                    data = yaml.safe_load(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeError, yaml.YAMLError):
                    data = None
                self._document = data if isinstance(data, dict) else None
        return self._document

    def of(self, thread_id: str) -> StopConditions | None:
        """The stop conditions of `thread_id`'s `simulate:` entry; None when the flow does not (or no longer) say."""
        document = self._load()
        if document is None:
            return None
        for thread in dict.fromkeys((thread_id, thread_id.split("#")[0])):
            for entry in _thread_entries(document, thread):
                if isinstance(entry, dict) and isinstance(entry.get("simulate"), dict):
                    return _conditions(_stop_entries(entry["simulate"]))
        return None


def _tools_called(turn: TurnRecord) -> list[str]:
    """The distinct names of the tools the agent called on `turn`, in order."""
    calls = turn.output.tool_calls if turn.output is not None else []
    return list(dict.fromkeys(call.name for call in calls))


def _tool_words(last: TurnRecord, stops: FlowStops) -> str:
    """Which tool stopped the dialogue: the flow's first stop tool among the last turn's calls (the order the
    scheduler checks them in), else the one tool called; never a guess between several."""
    called = _tools_called(last)
    if len(called) == 1:
        return f"the agent called {called[0]}"
    conditions = stops.of(last.thread_id) if called else None
    named = next((tool for tool in conditions.tools if tool in called), None) if conditions else None
    if named is not None:
        return f"the agent called {named}"
    return f"the agent called a stop tool ({', '.join(called)})" if called else "the agent called its stop tool"


def _judge_words(thread_id: str, stops: FlowStops) -> str:
    """What the judge found: the flow's judge condition (all of them when there are several, since any one
    of them may have been met first)."""
    conditions = stops.of(thread_id)
    judges = conditions.judges if conditions is not None else ()
    if len(judges) == 1:
        return f"the judge found: {judges[0]}"
    if judges:
        return "the judge found one of: " + "; ".join(judges)
    return "the judge found its stop condition met"


def stop_words(reason: str, last: TurnRecord, stops: FlowStops) -> str:
    """`reason` (as recorded on the dialogue's last turn `last`) in words, for a person."""
    if reason == "phrase":
        return "the caller said the stop phrase"
    if reason == "tool":
        return _tool_words(last, stops)
    if reason == "judge":
        return _judge_words(last.thread_id, stops)
    if reason == "max_turns":
        return "reached max_turns"
    if reason == "max_duration":
        return "reached max_duration"
    if reason == "replay_ended":
        return "the replayed caller had no more lines"
    return f"stopped: {reason}"


def dialogue_ending(turns: Sequence[TurnRecord], stops: FlowStops) -> DialogueEnding | None:
    """How the dialogue among one conversation's `turns` (in turn order) ended; None when the conversation has
    no dialogue or its dialogue has not ended (an interrupted run, or a dialogue that failed)."""
    last = next((turn for turn in reversed(turns) if turn.dialogue and turn.dialogue.stop_reason), None)
    if last is None or last.dialogue is None or last.dialogue.stop_reason is None:
        return None
    reason = last.dialogue.stop_reason
    agent_turns = sum(1 for turn in turns if turn.dialogue is not None and turn.output is not None)
    return DialogueEnding(
        stop_reason=reason,
        words=stop_words(reason, last, stops),
        verdicts=tuple(last.assertions),
        status=last.status,
        turn_index=last.turn_index,
        agent_turns=agent_turns,
    )
