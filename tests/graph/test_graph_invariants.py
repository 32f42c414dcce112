"""Invariants every compiled plan holds, checked on random suites."""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtflow.flow.spec import FlowSpec
from rtflow.plan.compiler import compile_flow
from rtflow.plan.graph import CallNode, GradeNode, Plan

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def providers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 top-level providers; fallbacks are fresh labelled entries, nested ones, or bare ids of the others."""
    count = draw(st.integers(1, 3))
    kinds = [draw(st.sampled_from(["openai:realtime", "openai:chat"])) for _ in range(count)]
    ids = [f"{kind}:model-{index}" for index, kind in enumerate(kinds)]
    entries: list[dict[str, Any]] = []
    for index in range(count):
        fallbacks: list[Any] = []
        others = [other for other in range(count) if other != index]
        references = draw(st.lists(st.sampled_from(others), unique=True, max_size=2)) if others else []
        fresh = draw(st.integers(0, 2))
        for position in range(fresh):
            entry: dict[str, Any] = {"id": f"openai:chat:fallback-{index}-{position}", "label": f"fb{index}x{position}"}
            if draw(st.booleans()):
                entry["fallback"] = {"id": f"openai:chat:deep-{index}-{position}", "label": f"deep{index}x{position}"}
            fallbacks.append(entry)
        fallbacks.extend(ids[other] for other in references)
        fallbacks = draw(st.permutations(fallbacks))
        label = draw(st.sampled_from([f"p{index}", None]))
        entries.append({"id": ids[index], "label": label, "fallback": fallbacks})
    return entries


@st.composite
def suites(draw: st.DrawFn) -> dict[str, Any]:
    """A random flow document: providers, prompts, grouped tests, `threads:` sugar and assertions."""
    prompt_count = draw(st.integers(1, 3))
    prompts: list[Any] = [
        {"raw": f"{{{{ question }}}} {index}", "label": f"prompt_{index}"}
        if draw(st.booleans())
        else f"q{index} {{{{ x | default(1) }}}}"
        for index in range(prompt_count)
    ]
    assertion = st.lists(
        st.sampled_from([{"type": "icontains", "value": "a"}, {"type": "llm-rubric", "value": "b"}]), max_size=2
    )
    tests = [
        {
            "vars": {"question": f"question {index}"},
            "metadata": {"conversationId": conversation} if conversation is not None else {},
            "assert": draw(assertion),
        }
        for index, conversation in enumerate(
            draw(st.lists(st.sampled_from(["alpha", "beta", 'quote"d', None]), max_size=10))
        )
    ]
    threads = {
        f"thread_{index}": [{"question": f"t{index}.{turn}", "assert": draw(assertion)} for turn in range(turns)]
        for index, turns in enumerate(draw(st.lists(st.integers(1, 4), max_size=3)))
    }
    if not tests and not threads:
        threads = {"only": [{"question": "hello"}]}
    document: dict[str, Any] = {"providers": draw(providers()), "prompts": prompts, "tests": tests, "threads": threads}
    if draw(st.booleans()):
        document["default_test"] = {"assert": [{"type": "not-contains", "value": "sorry"}]}
    return document


def _is_primary(plan: Plan, node_id: str) -> bool:
    node = plan.node(node_id)
    return isinstance(node, CallNode) and not node.is_fallback


def _compile(document: dict[str, Any], repeat: int) -> Plan:
    return compile_flow(FlowSpec.model_validate(document), repeat=repeat)


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 3))
def test_each_turn_is_one_fallback_chain_in_provider_order(document: dict[str, Any], repeat: int) -> None:
    """Each turn has one call node per chain position, linked primary -> fallback -> fallback in chain order."""
    plan = _compile(document, repeat)
    for conversation in plan.conversations.values():
        labels = [provider.display_label for provider in conversation.chain]
        assert conversation.provider_label == labels[0]
        for turn_index, turn_nodes in enumerate(conversation.call_nodes):
            assert len(turn_nodes) == len(labels)
            for position, node_id in enumerate(turn_nodes):
                node = plan.node(node_id)
                assert isinstance(node, CallNode)
                assert plan.graph.nodes[node_id]["kind"] == "call"
                assert (node.conversation_id, node.turn_index) == (conversation.id, turn_index)
                assert (node.chain_position, node.provider_label) == (position, labels[position])
                assert node.is_fallback == (position > 0)
                assert node.provider_label in plan.providers
                expected_next = [turn_nodes[position + 1]] if position + 1 < len(turn_nodes) else []
                assert plan.successors(node_id, "fallback") == expected_next


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 3))
def test_conversations_are_separate_components(document: dict[str, Any], repeat: int) -> None:
    """Each conversation is exactly one weakly connected component of the graph."""
    plan = _compile(document, repeat)
    components = {frozenset(component) for component in nx.weakly_connected_components(plan.graph)}
    expected = {frozenset(conversation.node_ids()) for conversation in plan.conversations.values()}
    assert components == expected


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 2))
def test_grade_nodes_are_sinks_fed_by_their_turn(document: dict[str, Any], repeat: int) -> None:
    """A grade node has no successors and waits, along grade edges, for exactly its turn's call nodes."""
    plan = _compile(document, repeat)
    for conversation in plan.conversations.values():
        for turn_index, (turn, grade_id) in enumerate(zip(conversation.turns, conversation.grade_nodes, strict=True)):
            assert (grade_id is not None) == bool(turn.asserts)
            if grade_id is None:
                continue
            grade = plan.node(grade_id)
            assert isinstance(grade, GradeNode)
            assert (grade.conversation_id, grade.turn_index) == (conversation.id, turn_index)
            assert plan.graph.out_degree(grade_id) == 0
            assert sorted(plan.predecessors(grade_id)) == sorted(conversation.call_nodes[turn_index])
            assert sorted(plan.predecessors(grade_id, "grade")) == sorted(conversation.call_nodes[turn_index])


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 2))
def test_fallback_nodes_only_follow_their_chain(document: dict[str, Any], repeat: int) -> None:
    """A fallback's only predecessor is the previous node of its chain; sequence edges reach primaries only."""
    plan = _compile(document, repeat)
    for conversation in plan.conversations.values():
        for turn_index, turn_nodes in enumerate(conversation.call_nodes):
            for position, node_id in enumerate(turn_nodes[1:], start=1):
                assert plan.predecessors(node_id) == [turn_nodes[position - 1]]
                assert plan.graph.edges[turn_nodes[position - 1], node_id]["kind"] == "fallback"
            previous = conversation.call_nodes[turn_index - 1] if turn_index > 0 else []
            assert sorted(plan.predecessors(turn_nodes[0])) == sorted(previous)
            assert sorted(plan.predecessors(turn_nodes[0], "sequence")) == sorted(previous)


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 3))
def test_graph_is_a_dag_with_a_valid_topological_order(document: dict[str, Any], repeat: int) -> None:
    """The graph has no cycle, and `topological_order` lists every node once, after all its predecessors."""
    plan = _compile(document, repeat)
    assert nx.is_directed_acyclic_graph(plan.graph)
    order = plan.topological_order()
    assert sorted(order) == sorted(plan.graph.nodes)
    position = {node_id: index for index, node_id in enumerate(order)}
    assert all(position[source] < position[target] for source, target in plan.graph.edges)
    assert all(kind in {"sequence", "fallback", "grade"} for _, _, kind in plan.graph.edges(data="kind"))


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 3))
def test_node_ids_are_unique_and_stable(document: dict[str, Any], repeat: int) -> None:
    """Node ids never collide, and two compiles of the same flow give the same nodes and edges in the same order."""
    first, second = _compile(document, repeat), _compile(document, repeat)
    listed = [node_id for conversation in first.conversations.values() for node_id in conversation.node_ids()]
    assert len(listed) == len(set(listed)) == first.graph.number_of_nodes()
    assert list(first.graph.nodes) == list(second.graph.nodes)
    assert list(first.graph.edges(data="kind")) == list(second.graph.edges(data="kind"))
    assert [first.node(node_id) for node_id in first.graph] == [second.node(node_id) for node_id in second.graph]


@_SETTINGS
@given(document=suites(), repeat=st.integers(1, 3))
def test_counts_and_critical_path_match_the_graph(document: dict[str, Any], repeat: int) -> None:
    """Counts agree with the graph, and the critical path is the longest run of primaries along sequence edges."""
    plan = _compile(document, repeat)
    flow = plan.flow
    kinds = [kind for _, kind in plan.graph.nodes(data="kind")]
    calls = [node for node in (plan.node(node_id) for node_id in plan.graph) if isinstance(node, CallNode)]
    counts = plan.counts
    assert counts.call_nodes == kinds.count("call") == len(calls)
    assert counts.grade_nodes == kinds.count("grade")
    assert counts.fallback_nodes == sum(1 for node in calls if node.is_fallback)
    assert counts.threads == len(flow.thread_specs())
    assert counts.conversations == len(flow.thread_specs()) * len(flow.providers) * len(flow.prompts) * repeat
    assert counts.turns == sum(len(conversation.turns) for conversation in plan.conversations.values())

    path = plan.critical_path()
    assert len(path) == max(len(thread.turns) for thread in flow.thread_specs())
    assert all(_is_primary(plan, node_id) for node_id in path)
    assert all(plan.graph.edges[source, target]["kind"] == "sequence" for source, target in itertools.pairwise(path))
    primary_sequence = plan.graph.edge_subgraph(
        (source, target)
        for source, target, kind in plan.graph.edges(data="kind")
        if kind == "sequence" and _is_primary(plan, source)
    )
    longest_edges = nx.dag_longest_path_length(primary_sequence) if primary_sequence.number_of_edges() else 0
    assert len(path) == longest_edges + 1
