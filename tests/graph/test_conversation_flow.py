"""The example flow flows/conversation.yaml compiles to the plan its comments describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtflow.flow.loader import load
from rtflow.plan.compiler import compile_flow
from rtflow.plan.graph import CallNode, Plan

FLOWS = Path(__file__).resolve().parents[2] / "flows"


@pytest.fixture(scope="module")
def plan() -> Plan:
    """The compiled conversation flow."""
    return compile_flow(load(FLOWS / "conversation.yaml"))


def test_counts(plan: Plan) -> None:
    """Two three-turn threads on realtime with a chat fallback, every turn graded (default_test asserts)."""
    counts = plan.counts
    assert (counts.threads, counts.conversations, counts.turns) == (2, 2, 6)
    assert (counts.call_nodes, counts.fallback_nodes, counts.grade_nodes) == (12, 6, 6)
    assert plan.graph.number_of_nodes() == 18
    # per conversation: 3 fallback + 6 grade + 2 x 2 sequence edges
    assert plan.graph.number_of_edges() == 2 * (3 + 6 + 4)


def test_node_ids(plan: Plan) -> None:
    """Node ids name provider, thread, 1-based turn, fallback label and grade step."""
    assert list(plan.conversations) == ["realtime/japan_travel", "realtime/realtime_ai"]
    assert plan.topological_order()[:6] == [
        "realtime/japan_travel/1",
        "realtime/japan_travel/1~chat",
        "realtime/japan_travel/1#grade",
        "realtime/japan_travel/2",
        "realtime/japan_travel/2~chat",
        "realtime/japan_travel/2#grade",
    ]
    fallback = plan.node("realtime/realtime_ai/3~chat")
    assert isinstance(fallback, CallNode)
    assert (fallback.turn_index, fallback.provider_label, fallback.is_fallback) == (2, "chat", True)
    assert sorted(plan.providers) == ["chat", "realtime"]
    assert plan.providers["chat"].id == "openai:chat:gpt-4.1-mini"


def test_critical_path_is_three_primaries(plan: Plan) -> None:
    """The critical path is the three primary calls of the first conversation; grading stays off it."""
    assert plan.critical_path() == [
        "realtime/japan_travel/1",
        "realtime/japan_travel/2",
        "realtime/japan_travel/3",
    ]
    assert plan.successors("realtime/japan_travel/1#grade") == []
    assert sorted(plan.predecessors("realtime/japan_travel/2")) == [
        "realtime/japan_travel/1",
        "realtime/japan_travel/1~chat",
    ]


def test_conversation_carries_its_turns_and_prompt(plan: Plan) -> None:
    """A conversation keeps the thread's merged turns, the prompt and the provider chain in order."""
    conversation = plan.conversations["realtime/japan_travel"]
    assert conversation.thread_id == "japan_travel"
    assert [spec.display_label for spec in conversation.chain] == ["realtime", "chat"]
    assert conversation.prompt.kind == "python"
    assert [turn.vars["question"] for turn in conversation.turns][2].startswith("Which of the places")
    assert all(turn.asserts[0].type == "not-icontains" for turn in conversation.turns)
    assert plan.warnings == []


@pytest.mark.parametrize("flow_file", sorted(FLOWS.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_flow_compiles(flow_file: Path) -> None:
    """Each example flow loads and compiles to a non-empty plan."""
    compiled = compile_flow(load(flow_file))
    assert compiled.counts.call_nodes > 0
    assert len(compiled.critical_path()) >= 1
