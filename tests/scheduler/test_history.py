"""How a conversation's history reaches the next prompt and the provider."""

from __future__ import annotations

from rtflow.messages import Message
from rtflow.runner.history import ConversationHistory


def test_a_prompt_without_history_gets_the_earlier_turns_after_its_system_message() -> None:
    """An inline prompt is answered in a conversation of system, earlier user/assistant pairs, then itself."""
    history = ConversationHistory()
    history.add([Message.of("system", "be brief"), Message.of("user", "q1")], "a1")
    context = history.context_for([Message.of("system", "be brief"), Message.of("user", "q2")])
    assert [(m.role, m.text) for m in context] == [
        ("system", "be brief"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
    ]


def test_a_prompt_that_builds_its_own_history_is_taken_as_it_is() -> None:
    """A rendered prompt holding an assistant message already carries the history: nothing is added."""
    history = ConversationHistory()
    history.add([Message.of("user", "q1")], "a1")
    rendered = [Message.of("user", "q1"), Message.of("assistant", "a1 (reworded)"), Message.of("user", "q2")]
    assert history.context_for(rendered) == rendered


def test_conversation_var_is_promptfoos_shape_and_cannot_be_edited_through() -> None:
    """`_conversation` entries hold input, output, prompt and metadata; editing a copy leaves the history alone."""
    history = ConversationHistory()
    history.add([Message.of("user", "q1")], "a1", {"conversationId": "t"})
    entries = history.conversation_var()
    assert entries == [{"input": "q1", "output": "a1", "prompt": "q1", "metadata": {"conversationId": "t"}}]
    entries[0]["output"] = "changed"
    assert history.conversation_var()[0]["output"] == "a1"
