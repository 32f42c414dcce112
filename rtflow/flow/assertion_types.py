"""The assertion types a flow may write: the flow stage checks them at load, the results stage evaluates them.

The names live here, below both stages, so that loading a flow never imports the evaluators (and their
dependencies); `tests/results/test_assertions.py` holds the evaluators to exactly this list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BASE_ASSERTION_TYPES",
    "BOUND_TYPES",
    "CONVERSATION_TYPES",
    "KNOWN_ASSERTION_TYPES",
    "MODEL_GRADED_TYPES",
    "NEGATION_PREFIX",
    "PROMPTFOO_ASSERTION_TYPES",
    "grader_key",
    "is_model_graded",
    "split_negation",
]

NEGATION_PREFIX = "not-"

BOUND_TYPES = frozenset({"latency", "cost"})
"""Kinds whose value is a bound (milliseconds, dollars), which promptfoo writes as `threshold` (a test file's
`latency(5000)`); unlike a score's threshold it has no default."""

MODEL_GRADED_TYPES: frozenset[str] = frozenset({"llm-rubric", "goal-met", "conversation-rubric"})
"""Assertion kinds that ask the grader model (without the `not-` prefix)."""

CONVERSATION_TYPES: frozenset[str] = frozenset({"turns", "stop-reason", "goal-met", "conversation-rubric", "each-turn"})
"""Kinds judged over a whole simulated conversation, in a `simulate:` entry's `assert` (nowhere else)."""

BASE_ASSERTION_TYPES: frozenset[str] = (
    MODEL_GRADED_TYPES
    | CONVERSATION_TYPES
    | {
        "absent",
        "audio-duration",
        "contains",
        "contains-all",
        "contains-any",
        "contains-json",
        "cost",
        "equals",
        "events",
        "icontains",
        "icontains-all",
        "icontains-any",
        "is-json",
        "is-valid-json-schema",
        "javascript",
        "json-schema",
        "latency",
        "python",
        "regex",
        "starts-with",
        "tool-called",
    }
)
"""Every assertion kind, without the `not-` prefix."""

PROMPTFOO_ASSERTION_TYPES: frozenset[str] = BASE_ASSERTION_TYPES | {
    "answer-relevance", "bleu", "classifier", "contains-html", "contains-sql", "contains-xml",
    "context-faithfulness", "context-recall", "context-relevance", "conversation-relevance", "factuality",
    "finish-reason", "g-eval", "gleu", "guardrails", "is-html", "is-refusal", "is-sql", "is-valid-function-call",
    "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml", "javascript", "levenshtein",
    "max-score", "meteor", "model-graded-closedqa", "model-graded-factuality", "moderation", "perplexity",
    "perplexity-score", "pi", "rouge-n", "ruby", "select-best", "similar", "tool-call-f1", "webhook", "word-count",
}  # fmt: skip
"""Every assertion kind promptfoo names (rtflow's own too): a CSV cell `similar(0.8):text` is read as a `similar`
assertion, which the loader then reports as unsupported, rather than as text that must be equal."""

KNOWN_ASSERTION_TYPES: frozenset[str] = BASE_ASSERTION_TYPES | {NEGATION_PREFIX + kind for kind in BASE_ASSERTION_TYPES}
"""Every assertion type a flow may write, `not-` forms included."""


def split_negation(assertion_type: str) -> tuple[str, bool]:
    """`("icontains", True)` for `not-icontains`: the kind, and whether its verdict is inverted."""
    if assertion_type.startswith(NEGATION_PREFIX):
        return assertion_type[len(NEGATION_PREFIX) :], True
    return assertion_type, False


def is_model_graded(assertion_type: str) -> bool:
    """Whether an assertion of this type (`not-` forms too) asks a grader model."""
    return split_negation(assertion_type)[0] in MODEL_GRADED_TYPES


def grader_key(provider: str | Mapping[str, Any] | None) -> str | None:
    """The name under which a run keeps the grader an assertion or a test names (None: the flow's grader)."""
    if provider is None or isinstance(provider, str):
        return provider
    return json.dumps(provider, sort_keys=True, default=str)
