"""The DOT, Mermaid and node-link JSON drawings of a plan say what the plan says, whatever the ids hold."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import networkx as nx
import pytest
from flow_builders import CHAT, icontains, make_flow

from rtflow.plan.compiler import compile_flow
from rtflow.plan.export import GRAPH_FORMATS, render_graph, to_dot, to_json, to_mermaid
from rtflow.plan.graph import Plan

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

# Thread ids may hold quotes and backslashes; the exporters must keep every format well formed anyway.
_AWKWARD_THREADS = {
    'say_"hi"': [{"question": "a", "assert": [icontains("a")]}, {"question": "b"}],
    "back\\slash": [{"question": "c", "assert": [icontains("c")]}],
    "<b>html&amp;": [{"question": "d"}],
}


def _awkward_plan() -> Plan:
    providers = [
        {"id": "openai:realtime:gpt-realtime", "label": "realtime", "fallback": CHAT},
        {"id": CHAT, "label": "chat"},
    ]
    return compile_flow(make_flow(providers=providers, threads=_AWKWARD_THREADS))


def _graphviz_json(dot_text: str) -> dict[str, Any]:
    completed = subprocess.run(["dot", "-Tjson"], input=dot_text.encode(), capture_output=True, check=True)
    assert completed.stderr == b""
    parsed: dict[str, Any] = json.loads(completed.stdout)
    return parsed


@needs_graphviz
def test_dot_keeps_ids_clusters_and_edge_styles() -> None:
    """Graphviz reads the DOT back as one cluster per conversation, every node, and styles by edge kind."""
    plan = _awkward_plan()
    drawn = _graphviz_json(to_dot(plan))
    objects = drawn["objects"]
    clusters = [obj for obj in objects if obj["name"].startswith("cluster_")]
    nodes = {obj["_gvid"]: obj["name"] for obj in objects if not obj["name"].startswith("cluster_")}
    # DOT keeps a backslash in a quoted id as written, so ids with one come back with it doubled.
    assert sorted(nodes.values()) == sorted(node_id.replace("\\", "\\\\") for node_id in plan.graph)
    assert 'realtime/say_"hi"/1~chat' in nodes.values()
    assert len(clusters) == len(plan.conversations)
    assert {cluster["label"] for cluster in clusters} == {
        conversation_id.replace("\\", "\\\\") for conversation_id in plan.conversations
    }
    for cluster in clusters:
        members = {nodes[index].replace("\\\\", "\\") for index in cluster["nodes"]}
        assert members == set(plan.conversations[cluster["label"].replace("\\\\", "\\")].node_ids())
    styles = {"sequence": "solid", "fallback": "dashed", "grade": "dotted"}
    drawn_edges = {
        (nodes[edge["tail"]].replace("\\\\", "\\"), nodes[edge["head"]].replace("\\\\", "\\")): edge["style"]
        for edge in drawn["edges"]
    }
    assert drawn_edges == {(source, target): styles[kind] for source, target, kind in plan.graph.edges(data="kind")}


@needs_graphviz
def test_dot_renders_to_svg() -> None:
    """`dot -Tsvg` turns the DOT into an SVG with one node group per plan node."""
    plan = _awkward_plan()
    completed = subprocess.run(["dot", "-Tsvg"], input=to_dot(plan).encode(), capture_output=True, check=True)
    svg = completed.stdout.decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg.count('class="node"') == plan.graph.number_of_nodes()
    assert svg.count('class="edge"') == plan.graph.number_of_edges()
    assert svg.count('class="cluster"') == len(plan.conversations)


def test_mermaid_has_a_subgraph_per_conversation_and_safe_ids() -> None:
    """Mermaid ids are plain unique words, labels carry no raw quotes or `#`, and every edge is drawn."""
    plan = _awkward_plan()
    text = to_mermaid(plan)
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    subgraphs = [line for line in lines if line.startswith("  subgraph ")]
    assert len(subgraphs) == len(plan.conversations)
    assert sum(1 for line in lines if line == "  end") == len(plan.conversations)
    node_lines = [line.strip() for line in lines if re.match(r"^    n_\w+\[", line)]
    ids = [line.split("[", 1)[0] for line in node_lines]
    assert len(ids) == len(set(ids)) == plan.graph.number_of_nodes()
    entity = re.compile(r"#(35|38|quot|lt|gt);")
    for line in node_lines + [line.strip() for line in subgraphs]:
        label = line.split("[", 1)[1].strip("[]/")
        assert label.startswith('"') and label.endswith('"')
        inner = entity.sub("", label[1:-1]).replace("<br/>", "")  # the one tag the exporter writes itself
        assert not set(inner) & set('"#&<>')
    assert "say_#quot;hi#quot;" in text
    arrows = [line for line in lines if " --> " in line or " -.-> " in line or " -. fallback .-> " in line]
    assert len(arrows) == plan.graph.number_of_edges()
    assert sum(" -. fallback .-> " in line for line in arrows) == plan.counts.fallback_nodes


def test_json_is_node_link_data_that_networkx_reads_back() -> None:
    """`networkx.node_link_graph` rebuilds the same nodes, node fields and edge kinds from the JSON."""
    plan = _awkward_plan()
    rebuilt = nx.node_link_graph(json.loads(to_json(plan)), directed=True, multigraph=False)
    assert set(rebuilt.nodes) == set(plan.graph.nodes)
    assert set(rebuilt.edges(data="kind")) == set(plan.graph.edges(data="kind"))
    chat_fallback = rebuilt.nodes['realtime/say_"hi"/2~chat']
    assert chat_fallback == {
        "kind": "call",
        "conversation_id": 'realtime/say_"hi"',
        "turn_index": 1,
        "provider_label": "chat",
        "chain_position": 1,
        "is_fallback": True,
    }
    assert rebuilt.nodes['realtime/say_"hi"/1#grade'] == {
        "kind": "grade",
        "conversation_id": 'realtime/say_"hi"',
        "turn_index": 0,
    }


def test_render_graph_dispatches_and_refuses_unknown_formats() -> None:
    """`render_graph` gives each named format's text and refuses a name it does not know."""
    plan = _awkward_plan()
    assert [render_graph(plan, name) for name in GRAPH_FORMATS] == [to_dot(plan), to_mermaid(plan), to_json(plan)]
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        render_graph(plan, "svg")
