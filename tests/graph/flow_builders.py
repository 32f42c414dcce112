"""Flows for the graph tests, built through the real spec models (never copies of them)."""

from __future__ import annotations

from typing import Any

from rtflow.flow.spec import FlowSpec

REALTIME = "openai:realtime:gpt-realtime"
CHAT = "openai:chat:gpt-4.1-mini"


def make_flow(**sections: Any) -> FlowSpec:
    """A valid flow: one realtime provider falling back to chat, one inline prompt, plus `sections`."""
    document: dict[str, Any] = {
        "providers": [{"id": REALTIME, "label": "realtime", "fallback": {"id": CHAT, "label": "chat"}}],
        "prompts": ["{{ question }}"],
    }
    document.update(sections)
    if "tests" not in document and "threads" not in document:
        document["tests"] = [
            {"vars": {"question": "q1"}, "metadata": {"conversationId": "japan_travel"}, "assert": [icontains("a")]},
            {"vars": {"question": "q2"}, "metadata": {"conversationId": "japan_travel"}},
        ]
    return FlowSpec.model_validate(document)


def icontains(value: str) -> dict[str, Any]:
    """An `icontains` assertion."""
    return {"type": "icontains", "value": value}
