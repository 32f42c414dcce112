"""Prompt function for conversation.yaml: system message, the conversation so far, then the new question.

rtflow (like promptfoo) calls `build(context)` with `context["vars"]` (the turn's variables, including
`_conversation`, the earlier turns of this conversation as `{input, output, prompt, metadata}`) and
`context["provider"]` (`{id, label, config}`). Messages use the Realtime content-part form, which the Chat
provider converts; a session-keeping provider sends only the messages its session does not already hold.
"""

from __future__ import annotations

from typing import Any


def _text_message(role: str, part_type: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": part_type, "text": text}]}


def build(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages for one turn."""
    variables = context["vars"]
    messages: list[dict[str, Any]] = []
    system_message = variables.get("system_message")
    if system_message:
        messages.append(_text_message("system", "input_text", str(system_message)))
    for earlier in variables.get("_conversation") or []:
        messages.append(_text_message("user", "input_text", str(earlier["input"])))
        messages.append(_text_message("assistant", "text", str(earlier["output"])))
    messages.append(_text_message("user", "input_text", str(variables["question"])))
    return messages
