"""A conversation's memory between turns: what the next prompt sees, and what the model is asked to see.

Two views of the same finished turns:

- `conversation_var()` is promptfoo's `vars._conversation`: one `{input, output, prompt, metadata}` per earlier
  turn, for prompt functions and templates that build their own history.
- `build_context()` is the whole conversation a provider is asked to answer for this turn. If the rendered
  prompt already holds an assistant message, the prompt built its own history and is taken as it is. If it
  does not (an inline `{{ question }}` prompt), the earlier turns are put in front of it: each earlier turn's
  new user message(s) and the assistant's reply, after the prompt's system messages. Either way a provider
  receives one complete conversation and decides itself what its session already holds.

History never crosses conversations: each conversation has its own `ConversationHistory`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rtflow.messages import Message

__all__ = ["ConversationHistory", "FinishedTurn", "build_context", "trailing_user_messages"]

_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True)
class FinishedTurn:
    """One answered turn, as later turns need it."""

    user_messages: list[Message]
    """The messages this turn added on the user's side (the trailing user messages of its prompt)."""
    output_text: str
    entry: dict[str, Any]
    """The turn's `_conversation` entry, built once when the turn finished."""

    @property
    def reply(self) -> Message:
        return Message.of("assistant", self.output_text)


def trailing_user_messages(messages: list[Message]) -> list[Message]:
    """The user messages after the last assistant or system message: what this turn itself says."""
    tail: list[Message] = []
    for message in reversed(messages):
        if message.role != "user":
            break
        tail.append(message)
    return list(reversed(tail))


def _prompt_as_text(rendered: list[Message]) -> str:
    if len(rendered) == 1 and isinstance(rendered[0].content, str):
        return rendered[0].content
    return json.dumps([m.model_dump(exclude_none=True) for m in rendered], ensure_ascii=False)


def build_context(rendered: list[Message], earlier: list[FinishedTurn]) -> list[Message]:
    """The whole conversation to answer for this turn (see the module docstring for the rule)."""
    if not earlier or any(m.role == "assistant" for m in rendered):
        return list(rendered)
    system = [m for m in rendered if m.role in _SYSTEM_ROLES]
    rest = [m for m in rendered if m.role not in _SYSTEM_ROLES]
    context = list(system)
    for turn in earlier:
        context.extend(turn.user_messages)
        context.append(turn.reply)
    context.extend(rest)
    return context


@dataclass
class ConversationHistory:
    """The finished turns of one conversation, in order."""

    turns: list[FinishedTurn] = field(default_factory=list)

    def add(self, rendered: list[Message], output_text: str, metadata: dict[str, Any] | None = None) -> None:
        user_messages = trailing_user_messages(rendered)
        entry = {
            "input": "\n".join(m.text for m in user_messages),
            "output": output_text,
            "prompt": _prompt_as_text(rendered),
            "metadata": dict(metadata or {}),
        }
        self.turns.append(FinishedTurn(user_messages=user_messages, output_text=output_text, entry=entry))

    def conversation_var(self) -> list[dict[str, Any]]:
        """promptfoo's `_conversation`: `{input, output, prompt, metadata}` per earlier turn (fresh copies, so
        a prompt function that edits them cannot change the history)."""
        return [dict(turn.entry) for turn in self.turns]

    def context_for(self, rendered: list[Message]) -> list[Message]:
        return build_context(rendered, self.turns)
