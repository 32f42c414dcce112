"""Deterministic answers to model-graded assertions (promptfoo's llm-rubric form).

A request whose user message holds `<Output>...</Output>` and `<Rubric>...</Rubric>` is graded: the rubric's
content words (letters only, 4+ letters, minus a short stop list) are compared case-insensitively, by their
first 5 letters, with the output's words. score = share of rubric words found, pass = score >= 0.5. A rubric
containing the word `GARBAGE` gets an answer that is not JSON, so grader failures can be tested.
"""

from __future__ import annotations

import json
import re

__all__ = ["grade_reply", "rubric_request"]

_OUTPUT = re.compile(r"<Output>(.*?)</Output>", re.DOTALL)
_RUBRIC = re.compile(r"<Rubric>(.*?)</Rubric>", re.DOTALL)
_LETTERS = re.compile(r"[A-Za-z]+")
STOP_WORDS = frozenset(
    {
        "about",
        "above",
        "after",
        "again",
        "also",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "from",
        "further",
        "have",
        "having",
        "here",
        "into",
        "itself",
        "just",
        "more",
        "most",
        "must",
        "only",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "response",
        "answer",
        "output",
        "mentions",
        "mention",
    }
)


def rubric_request(user_text: str) -> tuple[str, str] | None:
    """(output, rubric) when `user_text` is a grading request, else None."""
    output = _OUTPUT.search(user_text)
    rubric = _RUBRIC.search(user_text)
    if output is None or rubric is None:
        return None
    return output.group(1).strip(), rubric.group(1).strip()


def grade_reply(output: str, rubric: str) -> str:
    """The grader's reply: JSON `{"reason", "pass", "score"}`, or prose when the rubric says GARBAGE."""
    if re.search(r"\bGARBAGE\b", rubric):
        return "I am unable to grade this output, sorry."
    terms: list[str] = []
    for word in _LETTERS.findall(rubric):
        lowered = word.lower()
        if len(lowered) >= 4 and lowered not in STOP_WORDS and lowered not in terms:
            terms.append(lowered)
    output_stems = {word.lower()[:5] for word in _LETTERS.findall(output)}
    found = [term for term in terms if term[:5] in output_stems]
    missing = [term for term in terms if term[:5] not in output_stems]
    score = round(len(found) / len(terms), 4) if terms else 1.0
    passed = score >= 0.5
    reason = f"Found {len(found)} of {len(terms)} rubric terms"
    if found:
        reason += f"; found: {', '.join(found)}"
    if missing:
        reason += f"; missing: {', '.join(missing)}"
    return json.dumps({"reason": reason, "pass": passed, "score": score})
