"""The plan a flow compiles to: a dependency graph of provider calls and grading steps.

The compiler fills the plan's own adjacency (`Plan.nodes`, `successors`, `predecessors`), which is all the
scheduler and the drawings read; `Plan.graph`, the same graph as a `networkx.DiGraph` for users and their
algorithms, is built from it on first use, so a run or a `validate` never pays networkx's import (about 0.2 s)
or its per-node dictionaries. Every node of `Plan.graph` carries two attributes: `kind` (`"call"` or `"grade"`) and
`node` (a `CallNode` or `GradeNode`). Every edge carries `kind`:

- `sequence`: from every call node of turn i to the primary call node of turn i+1 of the same conversation, so
  the next turn waits for whichever provider of the chain answered (a fallback that was not needed ends as
  skipped, which counts as done);
- `fallback`: from one call node of a turn's chain to the next one; the fallback runs only if its
  predecessor failed after its retries;
- `grade`: from every call node of a turn to that turn's grade node. Nothing waits for a grade node, so grading
  never sits on the critical path.

Conversations share no nodes, so each one is a weakly connected component of its own. Node ids are readable
and stable across compiles: `realtime/japan_travel/1` (turns are 1-based in ids), `realtime/japan_travel/1~chat`
for the fallback labelled `chat`, `realtime/japan_travel/1#grade` for the grade node.

The exporters (DOT, Mermaid, node-link JSON) live in `rtflow.plan.export`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import networkx as nx

    from rtflow.flow.spec import FlowSpec, PromptSpec, ProviderSpec, TurnSpec

__all__ = [
    "CallNode",
    "Conversation",
    "DialogueNode",
    "EdgeKind",
    "GradeNode",
    "NodeKind",
    "Plan",
    "PlanCounts",
    "call_node_id",
    "dialogue_node_id",
    "grade_node_id",
]

NodeKind = Literal["call", "grade", "dialogue"]
EdgeKind = Literal["sequence", "fallback", "grade"]


def call_node_id(conversation_id: str, turn_index: int, fallback_label: str | None = None) -> str:
    """The id of a call node: `<conversation>/<turn number>`, plus `~<label>` for a fallback."""
    node_id = f"{conversation_id}/{turn_index + 1}"
    return node_id if fallback_label is None else f"{node_id}~{fallback_label}"


def dialogue_node_id(conversation_id: str) -> str:
    """The id of a conversation's simulated dialogue: `<conversation>/dialogue` (its generated turns are recorded
    under the call node ids of the turns they become: `<conversation>/<turn number>`)."""
    return f"{conversation_id}/dialogue"


def grade_node_id(conversation_id: str, turn_index: int) -> str:
    """The id of a turn's grade node: `<conversation>/<turn number>#grade`."""
    return f"{conversation_id}/{turn_index + 1}#grade"


@dataclass(frozen=True, slots=True)
class CallNode:
    """One provider call for one turn of one conversation."""

    id: str
    conversation_id: str
    turn_index: int
    """0-based position of the turn in its conversation."""
    provider_label: str
    """The label of the provider this node calls (a key of `Plan.providers`)."""
    chain_position: int
    """0 for the primary, 1 for the first fallback, and so on."""
    is_fallback: bool


@dataclass(frozen=True, slots=True)
class DialogueNode(CallNode):
    """A simulated conversation (`simulate:`): one node that unfolds into up to `max_turns` turns while it runs,
    each stored as a turn record of its own. Each turn calls the conversation's primary provider, then its
    fallbacks in order if it fails."""

    max_turns: int = 1


@dataclass(frozen=True, slots=True)
class GradeNode:
    """The assertions of one turn of one conversation."""

    id: str
    conversation_id: str
    turn_index: int
    """0-based position of the turn in its conversation."""


@dataclass(slots=True)
class Conversation:
    """One thread run against one provider chain with one prompt."""

    id: str
    thread_id: str
    prompt: PromptSpec
    provider_label: str
    """The primary provider's label."""
    chain: list[ProviderSpec]
    """The providers tried for each turn, primary first."""
    turns: list[TurnSpec]
    call_nodes: list[list[str]]
    """Per turn, the call node ids in chain order."""
    grade_nodes: list[str | None]
    """Per turn, the grade node id, or None when the turn has no assertions."""
    repeat_index: int = 1
    """1 for the first copy of a conversation, 2 for the `#2` copy made by `repeat`, and so on."""

    @property
    def turn_budget(self) -> int:
        """The most turns the conversation can take: a dialogue counts its `max_turns`."""
        return sum(turn.simulate.max_turns if turn.simulate is not None else 1 for turn in self.turns)

    @property
    def primary_nodes(self) -> list[str]:
        """The primary call node of each turn, in turn order."""
        return [turn_nodes[0] for turn_nodes in self.call_nodes]

    def node_ids(self) -> Iterator[str]:
        """Every node id of the conversation in an order that respects the graph's edges."""
        for turn_nodes, grade_node in zip(self.call_nodes, self.grade_nodes, strict=True):
            yield from turn_nodes
            if grade_node is not None:
                yield grade_node


@dataclass(frozen=True, slots=True)
class PlanCounts:
    """How big a plan is."""

    threads: int
    """Distinct threads that survived the thread filter."""
    conversations: int
    """Threads x providers x prompts x repeat."""
    turns: int
    """Turns over all conversations (each becomes one turn record when the plan runs)."""
    call_nodes: int
    """Every call node, primaries and fallbacks."""
    fallback_nodes: int
    """Call nodes that are fallbacks."""
    grade_nodes: int


@dataclass(repr=False)
class Plan:
    """A compiled flow: its nodes and edges, plus what the scheduler and the reports need to read it."""

    flow: FlowSpec
    nodes: dict[str, CallNode | GradeNode]
    """Every node by id, in an order that respects the edges."""
    edges: dict[str, dict[str, EdgeKind]]
    """For each node id, the nodes that wait for it and the kind of each edge."""
    conversations: dict[str, Conversation]
    """Keyed by conversation id, in compile order (thread, then prompt, then provider, then repeat)."""
    providers: dict[str, ProviderSpec]
    """Every provider a call node names, keyed by its label."""
    warnings: list[str] = field(default_factory=list)
    """Things that compile but may not do what the author expects."""

    def __repr__(self) -> str:
        counts = self.counts
        return f"Plan(conversations={counts.conversations}, turns={counts.turns}, nodes={len(self.nodes)})"

    def only(self, conversation_ids: Collection[str]) -> Plan:
        """The same plan with only these conversations (a shard of it, or a batch a worker runs)."""
        wanted = set(conversation_ids)
        conversations = {cid: c for cid, c in self.conversations.items() if cid in wanted}
        nodes = {node_id: node for node_id, node in self.nodes.items() if node.conversation_id in wanted}
        edges = {node_id: {t: kind for t, kind in self.edges[node_id].items() if t in nodes} for node_id in nodes}
        return Plan(
            flow=self.flow,
            nodes=nodes,
            edges=edges,
            conversations=conversations,
            providers=self.providers,
            warnings=self.warnings,
        )

    @property
    def cuts_by_playback(self) -> bool:
        """Whether some turn's answer is cut where the caller has heard enough of it (`interrupt` with `after_ms`
        or `after_words`): such a cut needs answers that arrive as they play, or all of one is in before it."""
        return any(
            turn.interrupt is not None and turn.interrupt.after_event is None
            for conversation in self.conversations.values()
            for turn in conversation.turns
        )

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The plan as a `networkx.DiGraph` (node attributes `kind` and `node`, edge attribute `kind`)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((node_id, {"kind": _kind_of(node), "node": node}) for node_id, node in self.nodes.items())
        graph.add_edges_from(
            (source, target, {"kind": kind})
            for source, targets in self.edges.items()
            for target, kind in targets.items()
        )
        return graph

    def node(self, node_id: str) -> CallNode | GradeNode:
        """The node object behind an id."""
        return self.nodes[node_id]

    def topological_order(self) -> list[str]:
        """Every node id, each after all of its predecessors.

        Conversations are separate components, so each conversation's own order (turn by turn: the chain in
        order, then the grade node) concatenated is an order of the whole graph, found without a graph walk.
        """
        return [node_id for conversation in self.conversations.values() for node_id in conversation.node_ids()]

    def critical_path(self) -> list[str]:
        """The longest chain of primary call nodes along sequence edges (the first such chain on a tie).

        A conversation's primary call nodes are linked turn to turn by sequence edges and conversations never
        link to each other, so the longest chain is the primary nodes of the conversation with the most turns.
        """
        longest: Conversation | None = None
        for conversation in self.conversations.values():
            if longest is None or conversation.turn_budget > longest.turn_budget:
                longest = conversation
        return [] if longest is None else longest.primary_nodes

    @property
    def counts(self) -> PlanCounts:
        """Threads, conversations, turns and nodes of each kind."""
        call_nodes = fallback_nodes = grade_nodes = turns = 0
        threads: set[str] = set()
        for conversation in self.conversations.values():
            threads.add(conversation.thread_id)
            turns += len(conversation.turns)
            for turn_nodes in conversation.call_nodes:
                call_nodes += len(turn_nodes)
                fallback_nodes += len(turn_nodes) - 1
            grade_nodes += sum(1 for grade_node in conversation.grade_nodes if grade_node is not None)
        return PlanCounts(
            threads=len(threads),
            conversations=len(self.conversations),
            turns=turns,
            call_nodes=call_nodes,
            fallback_nodes=fallback_nodes,
            grade_nodes=grade_nodes,
        )

    def successors(self, node_id: str, kind: EdgeKind | None = None) -> list[str]:
        """The nodes that follow `node_id`, optionally only along edges of one kind."""
        return [successor for successor, edge in self.edges[node_id].items() if kind is None or edge == kind]

    def predecessors(self, node_id: str, kind: EdgeKind | None = None) -> list[str]:
        """The nodes `node_id` waits for, optionally only along edges of one kind."""
        return [
            predecessor
            for predecessor, targets in self.edges.items()
            if node_id in targets and (kind is None or targets[node_id] == kind)
        ]

    def in_degrees(self) -> dict[str, int]:
        """For every node, how many nodes it waits for."""
        waiting = dict.fromkeys(self.nodes, 0)
        for targets in self.edges.values():
            for target in targets:
                waiting[target] += 1
        return waiting


def _kind_of(node: CallNode | GradeNode) -> NodeKind:
    return "dialogue" if isinstance(node, DialogueNode) else "call" if isinstance(node, CallNode) else "grade"
