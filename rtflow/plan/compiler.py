"""Turning a loaded flow into a `Plan`: pure, no I/O, no network.

A conversation is one thread x one provider (with its fallback chain) x one prompt, copied `repeat` times.
Each turn of a conversation becomes one call node per provider of the chain plus, when the turn has
assertions, one grade node; the edges are described in `rtflow.plan.graph`.

Everything that would make the graph wrong or surprising is caught here, with a message that says what to
change in the flow: an unknown provider kind, two providers with one label, an empty suite, a thread filter
that matches nothing. Suites of tens of thousands of threads are expected, so the graph is built with
`add_nodes_from` / `add_edges_from` fed by generators, with the cyclic garbage collector paused.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from rtflow.errors import CompileError
from rtflow.flow.assertion_types import is_model_graded
from rtflow.flow.resolve import resolve
from rtflow.gc_pause import gc_paused
from rtflow.plan.graph import (
    CallNode,
    Conversation,
    DialogueNode,
    EdgeKind,
    GradeNode,
    Plan,
    call_node_id,
    dialogue_node_id,
    grade_node_id,
)

if TYPE_CHECKING:
    from rtflow.flow.spec import FlowSpec, PromptSpec, ProviderSpec, ThreadSpec

__all__ = [
    "compile_flow",
    "conversation_id",
    "shard_of",
]


_MAX_LISTED = 8


def compile_flow(
    flow: FlowSpec,
    *,
    repeat: int | None = None,
    thread_filter: str | None = None,
    only_threads: Collection[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> Plan:
    """Compile a loaded flow into a plan.

    `thread_filter` is an fnmatch pattern on thread ids, `only_threads` a set of ids (both may be given: a thread
    must pass both); `shard=(k, n)` keeps the k-th of n disjoint shares of the conversations (see `shard_of`);
    `repeat` (default: the flow's `execution.repeat`) runs each conversation that many times
    (the copies' ids end in `#2`, `#3`, ...). A flow built in code is resolved first
    (`rtflow.flow.resolve`), as `load` resolves a file: its provider kinds, configs, prompts and var files are
    checked there, once, and not here.
    """
    resolve(flow)
    with gc_paused():  # a large suite's millions of small objects, all kept (5x faster at 100k turns)
        copies = flow.execution.repeat if repeat is None else repeat
        plan = _compile(flow, repeat=copies, thread_filter=thread_filter, only_threads=only_threads)
    return plan if shard is None else _shard(plan, *shard)


def _compile(flow: FlowSpec, *, repeat: int, thread_filter: str | None, only_threads: Collection[str] | None) -> Plan:
    if repeat < 1:
        raise CompileError(f"repeat must be 1 or more, not {repeat}")
    if not flow.providers:
        raise CompileError(
            "the flow has no providers: add at least one under `providers:` "
            "(for example `- id: openai:realtime:gpt-realtime`)"
        )
    if not flow.prompts:
        raise CompileError(
            'the flow has no prompts: add at least one under `prompts:` (for example `- "{{ question }}"`)'
        )
    threads = _select_threads(flow.thread_specs(), thread_filter, only_threads)
    chains = _resolve_chains(flow.providers)
    providers = _provider_table(chains)
    # The prompt's label joins the conversation id only when there is more than one prompt to tell apart.
    prompt_labels: list[str | None] = _prompt_labels(flow.prompts) if len(flow.prompts) > 1 else [None]

    conversations: dict[str, Conversation] = {}
    for thread in threads:
        for prompt, prompt_label in zip(flow.prompts, prompt_labels, strict=True):
            for chain in chains:
                for repeat_index in range(1, _copies(thread, repeat) + 1):
                    conversation = _conversation(thread, prompt, prompt_label, chain, repeat_index)
                    if conversation.id in conversations:
                        raise CompileError(
                            f"two conversations would both be called {conversation.id!r}: provider labels, "
                            "prompt labels and thread ids must not combine into the same path; rename one"
                        )
                    conversations[conversation.id] = conversation
    nodes = {node.id: node for conversation in conversations.values() for node in _nodes_of(conversation)}
    edges: dict[str, dict[str, EdgeKind]] = {node_id: {} for node_id in nodes}
    for conversation in conversations.values():
        for source, target, kind in _edges_of(conversation):
            edges[source][target] = kind
    return Plan(
        flow=flow,
        nodes=nodes,
        edges=edges,
        conversations=conversations,
        providers=providers,
        warnings=_warnings(flow, threads, chains),
    )


def shard_of(conversation_id: str, shards: int) -> int:
    """The shard (1..`shards`) a conversation belongs to: a stable hash of its id, the same on every machine and
    in every process (Python's own `hash` of a string is salted per process), so N CI jobs that each run
    `--shard K/N` of the same flow run every conversation exactly once between them."""
    digest = hashlib.sha256(conversation_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def _shard(plan: Plan, index: int, shards: int) -> Plan:
    if not 1 <= index <= shards:
        raise CompileError(f"shard {index}/{shards}: the shard must be between 1 and {shards}")
    return plan.only([cid for cid in plan.conversations if shard_of(cid, shards) == index])


def _copies(thread: ThreadSpec, repeat: int) -> int:
    """How many times a thread runs: the largest `repeat:` its tests set, else the run's `repeat`."""
    own = [turn.repeat for turn in thread.turns if turn.repeat is not None]
    return max(own) if own else repeat


def _select_threads(
    threads: list[ThreadSpec], thread_filter: str | None, only_threads: Collection[str] | None
) -> list[ThreadSpec]:
    if not threads:
        raise CompileError("the flow has no tests: add turns under `tests:` or `threads:`")
    if only_threads is not None:
        wanted = set(only_threads)
        unknown = sorted(wanted - {thread.id for thread in threads})
        if unknown:
            raise CompileError(f"the flow has no thread {unknown[0]!r} (asked for by id); was it renamed?")
        threads = [thread for thread in threads if thread.id in wanted]
        if not threads:
            raise CompileError("no thread was selected: the list of thread ids is empty")
    if thread_filter is None:
        return threads
    selected = [thread for thread in threads if fnmatch.fnmatchcase(thread.id, thread_filter)]
    if not selected:
        available = ", ".join(thread.id for thread in threads[:_MAX_LISTED])
        more = f" and {len(threads) - _MAX_LISTED} more" if len(threads) > _MAX_LISTED else ""
        raise CompileError(f"the thread filter {thread_filter!r} matches no thread; thread ids are: {available}{more}")
    return selected


def _resolve_chains(top_level: list[ProviderSpec]) -> list[list[ProviderSpec]]:
    """Each top-level provider followed by its fallbacks, bare ids resolved to top-level providers."""
    by_label: dict[str, ProviderSpec] = {}
    for provider in top_level:
        label = provider.display_label
        if label in by_label:
            raise CompileError(
                f"two providers are both labelled {label!r}: give each a distinct `label:` "
                "(node ids and results are keyed by it)"
            )
        by_label[label] = provider
    by_id: dict[str, ProviderSpec] = {}
    for provider in top_level:
        by_id.setdefault(provider.id, provider)

    chains: list[list[ProviderSpec]] = []
    for provider in top_level:
        chain = [provider, *_fallbacks_of(provider, by_label, by_id)]
        labels = [member.display_label for member in chain]
        for position, label in enumerate(labels):
            if label in labels[:position]:
                raise CompileError(
                    f"provider {provider.display_label!r} lists {label!r} twice in its fallback chain "
                    "(or as its own fallback); each provider may appear once per chain"
                )
        chains.append(chain)
    return chains


def _fallbacks_of(
    provider: ProviderSpec, by_label: dict[str, ProviderSpec], by_id: dict[str, ProviderSpec]
) -> list[ProviderSpec]:
    """The providers tried after `provider`, depth first, as `ProviderSpec.chain` orders them."""
    fallbacks: list[ProviderSpec] = []
    for fallback in provider.fallback:
        resolved = _resolve_reference(fallback, by_label, by_id)
        fallbacks.append(resolved)
        # A reference to a top-level provider brings that provider only: following its own fallbacks could
        # loop (a falls back to b, b to a) and would make one provider's chain depend on another's.
        if resolved is fallback:
            fallbacks.extend(_fallbacks_of(fallback, by_label, by_id))
    return fallbacks


def _resolve_reference(
    fallback: ProviderSpec, by_label: dict[str, ProviderSpec], by_id: dict[str, ProviderSpec]
) -> ProviderSpec:
    # A fallback written as a bare id (`fallback: chat` or `fallback: openai:chat:gpt-4.1-mini`) that names a
    # top-level provider means that provider, config and all, not a fresh unconfigured one.
    if fallback.label is None and not fallback.config and not fallback.fallback:
        if fallback.id in by_label:
            return by_label[fallback.id]
        if fallback.id in by_id:
            return by_id[fallback.id]
    return fallback


def _provider_table(chains: list[list[ProviderSpec]]) -> dict[str, ProviderSpec]:
    providers: dict[str, ProviderSpec] = {}
    for chain in chains:
        for provider in chain:
            label = provider.display_label
            known = providers.get(label)
            if known is None:
                providers[label] = provider
            elif (known.id, known.config) != (provider.id, provider.config):
                raise CompileError(
                    f"two different providers are both labelled {label!r} (one of them a fallback): give the "
                    "fallback a `label:` of its own, or refer to the top-level provider by its label"
                )
    return providers


def _prompt_labels(prompts: list[PromptSpec]) -> list[str | None]:
    labels: list[str | None] = []
    for prompt in prompts:
        label = prompt.display_label
        if label in labels:
            raise CompileError(
                f"two prompts are both labelled {label!r}: give them distinct `label:`s "
                "(conversation ids include the prompt label when a flow has several prompts)"
            )
        labels.append(label)
    return labels


def conversation_id(provider_label: str, thread_id: str, prompt_label: str | None, repeat_index: int) -> str:
    """`<provider>/<thread>`, or `<provider>/<prompt>/<thread>` when the flow has several prompts, `#n` for copies."""
    parts = [provider_label] if prompt_label is None else [provider_label, prompt_label]
    base = "/".join([*parts, thread_id])
    return base if repeat_index == 1 else f"{base}#{repeat_index}"


def _conversation(
    thread: ThreadSpec, prompt: PromptSpec, prompt_label: str | None, chain: list[ProviderSpec], repeat_index: int
) -> Conversation:
    primary_label = chain[0].display_label
    fallback_labels = [provider.display_label for provider in chain[1:]]
    conv_id = conversation_id(primary_label, thread.id, prompt_label, repeat_index)
    call_nodes = [
        [dialogue_node_id(conv_id)]
        if turn.simulate is not None
        else [call_node_id(conv_id, turn_index), *(call_node_id(conv_id, turn_index, fb) for fb in fallback_labels)]
        for turn_index, turn in enumerate(thread.turns)
    ]
    # A dialogue judges its own assertions when it ends (over the whole conversation): no grade node.
    grade_nodes = [
        grade_node_id(conv_id, turn_index) if turn.asserts and turn.simulate is None else None
        for turn_index, turn in enumerate(thread.turns)
    ]
    return Conversation(
        id=conv_id,
        thread_id=thread.id,
        prompt=prompt,
        provider_label=primary_label,
        chain=chain,
        turns=thread.turns,
        call_nodes=call_nodes,
        grade_nodes=grade_nodes,
        repeat_index=repeat_index,
    )


_SEQUENCE: EdgeKind = "sequence"
_FALLBACK: EdgeKind = "fallback"
_GRADE: EdgeKind = "grade"


def _nodes_of(conversation: Conversation) -> Iterator[CallNode | GradeNode]:
    """The conversation's nodes, in `Conversation.node_ids` order."""
    labels = [provider.display_label for provider in conversation.chain]
    for turn_index, (turn_nodes, grade_node) in enumerate(
        zip(conversation.call_nodes, conversation.grade_nodes, strict=True)
    ):
        simulate = conversation.turns[turn_index].simulate
        if simulate is not None:
            yield DialogueNode(
                id=turn_nodes[0],
                conversation_id=conversation.id,
                turn_index=turn_index,
                provider_label=labels[0],
                chain_position=0,
                is_fallback=False,
                max_turns=simulate.max_turns,
            )
            continue
        for position, node_id in enumerate(turn_nodes):
            call = CallNode(
                id=node_id,
                conversation_id=conversation.id,
                turn_index=turn_index,
                provider_label=labels[position],
                chain_position=position,
                is_fallback=position > 0,
            )
            yield call
        if grade_node is not None:
            grade = GradeNode(id=grade_node, conversation_id=conversation.id, turn_index=turn_index)
            yield grade


def _edges_of(conversation: Conversation) -> Iterator[tuple[str, str, EdgeKind]]:
    """The conversation's edges: source, target and kind."""
    previous_turn: list[str] = []
    for turn_nodes, grade_node in zip(conversation.call_nodes, conversation.grade_nodes, strict=True):
        for position in range(1, len(turn_nodes)):
            yield turn_nodes[position - 1], turn_nodes[position], _FALLBACK
        if grade_node is not None:
            for node_id in turn_nodes:
                yield node_id, grade_node, _GRADE
        # Every member of the previous turn's chain leads to this turn's primary: the turn starts once whichever
        # of them answered is done (the ones not needed end as skipped, which counts as done).
        for previous in previous_turn:
            yield previous, turn_nodes[0], _SEQUENCE
        previous_turn = turn_nodes


def _warnings(flow: FlowSpec, threads: list[ThreadSpec], chains: list[list[ProviderSpec]]) -> list[str]:
    warnings: list[str] = []
    if flow.grader is None:
        graded = sorted(
            {
                assertion.type
                for thread in threads
                for turn in thread.turns
                for assertion in turn.asserts
                if is_model_graded(assertion.type) and assertion.provider is None
            }
        )
        if graded:
            warnings.append(
                f"model-graded assertions ({', '.join(graded)}) are used but no `grader:` is set; "
                "set `grader:` (for example `grader: openai:chat:gpt-4.1-mini`) to choose the model that grades them"
            )
    no_assertions = sum(1 for thread in threads if not any(turn.asserts for turn in thread.turns))
    if no_assertions:
        warnings.append(
            f"{no_assertions} of {len(threads)} threads have no assertions: their turns pass whenever a provider "
            "answers them"
        )
    for chain in chains:
        ids = [provider.id for provider in chain]
        if len(set(ids)) < len(ids):
            warnings.append(
                f"provider {chain[0].display_label!r} falls back to the same model id it already tried "
                f"({', '.join(ids)}); a fallback usually names another model or API"
            )
    return warnings
