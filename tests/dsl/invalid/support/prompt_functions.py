"""Prompt functions the DSL tests call: good ones and deliberately broken ones."""

from __future__ import annotations

from typing import Any


def as_string(context: dict[str, Any]) -> str:
    """A plain prompt string built from the vars and the provider."""
    return f"[{context['provider']['label']}] {context['vars']['question']}"


def as_messages(context: dict[str, Any]) -> list[dict[str, Any]]:
    """A system message and the question, in Realtime content-part form."""
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": context["vars"]["question"]}]},
    ]


def bad_role(context: dict[str, Any]) -> list[dict[str, Any]]:
    """A message list with a role no API knows."""
    return [{"role": "robot", "content": context["vars"]["question"]}]


def bad_part(context: dict[str, Any]) -> list[dict[str, Any]]:
    """A content part of a type no API knows."""
    return [{"role": "user", "content": [{"type": "input_video", "text": "x"}]}]


def returns_number(context: dict[str, Any]) -> int:
    """Neither a string nor a message list."""
    return 42


def raises(context: dict[str, Any]) -> str:
    """Fails the way user code fails."""
    raise KeyError("question")
