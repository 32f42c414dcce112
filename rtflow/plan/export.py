"""Drawing a plan: Graphviz DOT, a Mermaid flowchart, and networkx node-link JSON.

All three draw one group per conversation and tell the edge kinds apart: `sequence` solid, `fallback` dashed,
`grade` dotted. Node ids hold `/`, `~` and `#`, and thread names may hold quotes or backslashes, so every
string that reaches an output is escaped for that format here, never by the caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

from rtflow.plan.graph import CallNode, Conversation, DialogueNode, GradeNode, Plan

__all__ = ["GRAPH_FORMATS", "render_graph", "to_dot", "to_json", "to_mermaid", "to_node_link"]

GRAPH_FORMATS = ("dot", "mermaid", "json")

_DOT_EDGE_STYLE = {"sequence": "solid", "fallback": "dashed", "grade": "dotted"}
_MERMAID_ARROW = {"sequence": "-->", "fallback": "-. fallback .->", "grade": "-.->"}


def render_graph(plan: Plan, graph_format: str) -> str:
    """The plan in one of `GRAPH_FORMATS`, as text ending with a newline."""
    if graph_format == "dot":
        return to_dot(plan)
    if graph_format == "mermaid":
        return to_mermaid(plan)
    if graph_format == "json":
        return to_json(plan)
    raise ValueError(f"unknown graph format {graph_format!r}; expected one of {', '.join(GRAPH_FORMATS)}")


def _node_caption(node: CallNode | GradeNode) -> str:
    """What a node box says: its turn and what it does (the conversation is the cluster's caption)."""
    if isinstance(node, GradeNode):
        return f"turn {node.turn_index + 1}\ngrade"
    if isinstance(node, DialogueNode):
        last = node.turn_index + node.max_turns
        return f"turns {node.turn_index + 1}..{last}\ndialogue: {node.provider_label}\n(at most {node.max_turns})"
    role = "fallback" if node.is_fallback else "call"
    return f"turn {node.turn_index + 1}\n{role}: {node.provider_label}"


def _dot_quote(text: str) -> str:
    # In DOT a quoted string only treats `\"` specially, but labels are escString (where `\n`, `\l`, `\N`
    # mean something), so backslashes are doubled and newlines become `\n` explicitly.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def _conversation_edges(plan: Plan, conversation: Conversation) -> list[tuple[str, str, str]]:
    edges: list[tuple[str, str, str]] = []
    for node_id in conversation.node_ids():
        for successor, kind in plan.edges[node_id].items():
            edges.append((node_id, successor, kind))
    return edges


def to_dot(plan: Plan) -> str:
    """Graphviz DOT: one cluster per conversation, node ids as written in the plan."""
    lines = [
        "digraph rtflow {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for index, conversation in enumerate(plan.conversations.values()):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={_dot_quote(conversation.id)};")
        lines.append('    style="rounded"; color="#8899aa";')
        for node_id in conversation.node_ids():
            node = plan.node(node_id)
            attributes = [f"label={_dot_quote(_node_caption(node))}", f"tooltip={_dot_quote(node_id)}"]
            if isinstance(node, GradeNode):
                attributes.append('shape=note, fillcolor="#fdf6e3"')
            elif isinstance(node, DialogueNode):
                attributes.append('shape=box3d, fillcolor="#eefbf0"')
            elif node.is_fallback:
                attributes.append('fillcolor="#fbeeee"')
            lines.append(f"    {_dot_quote(node_id)} [{', '.join(attributes)}];")
        for source, target, kind in _conversation_edges(plan, conversation):
            lines.append(f"    {_dot_quote(source)} -> {_dot_quote(target)} [style={_DOT_EDGE_STYLE[kind]}];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _mermaid_text(text: str) -> str:
    # Mermaid reads `#name;` and `#123;` as entities inside quoted labels (so `#` goes first) and renders
    # labels as HTML, so markup characters become entities too and show as typed.
    escaped = text.replace("#", "#35;")
    for character, entity in (('"', "#quot;"), ("&", "#38;"), ("<", "#lt;"), (">", "#gt;")):
        escaped = escaped.replace(character, entity)
    return '"' + escaped.replace("\r", "").replace("\n", "<br/>") + '"'


class _MermaidIds:
    """Mermaid ids must be plain words; readable ones are derived from node ids and kept unique."""

    def __init__(self) -> None:
        self._by_name: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, name: str) -> str:
        known = self._by_name.get(name)
        if known is not None:
            return known
        base = "n_" + _MERMAID_UNSAFE.sub("_", name)
        candidate, suffix = base, 2
        while candidate in self._taken:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        self._taken.add(candidate)
        self._by_name[name] = candidate
        return candidate


def to_mermaid(plan: Plan) -> str:
    """A Mermaid flowchart with one subgraph per conversation."""
    mermaid_id = _MermaidIds()
    lines = ["flowchart TB"]
    for conversation in plan.conversations.values():
        lines.append(f"  subgraph {mermaid_id('conversation:' + conversation.id)}[{_mermaid_text(conversation.id)}]")
        for node_id in conversation.node_ids():
            node = plan.node(node_id)
            caption = _mermaid_text(_node_caption(node))
            shape = f"[/{caption}/]" if isinstance(node, GradeNode) else f"[{caption}]"
            lines.append(f"    {mermaid_id(node_id)}{shape}")
        for source, target, kind in _conversation_edges(plan, conversation):
            lines.append(f"    {mermaid_id(source)} {_MERMAID_ARROW[kind]} {mermaid_id(target)}")
        lines.append("  end")
    return "\n".join(lines) + "\n"


def to_node_link(plan: Plan) -> dict[str, Any]:
    """networkx node-link data, with each node's dataclass flattened into plain JSON attributes."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for conversation in plan.conversations.values():
        for node_id in conversation.node_ids():
            node = plan.node(node_id)
            kind = "grade" if isinstance(node, GradeNode) else "dialogue" if isinstance(node, DialogueNode) else "call"
            nodes.append({"kind": kind, **asdict(node)})
        edges.extend(
            {"source": source, "target": target, "kind": kind}
            for source, target, kind in _conversation_edges(plan, conversation)
        )
    # The layout of `networkx.node_link_data(graph)`, so `networkx.node_link_graph(data)` reads it back.
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}


def to_json(plan: Plan) -> str:
    """`to_node_link` as indented JSON text."""
    return json.dumps(to_node_link(plan), indent=2, ensure_ascii=False) + "\n"
