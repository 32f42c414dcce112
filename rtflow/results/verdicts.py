"""Why a turn did not pass, in words: the one wording the CSV, the Markdown summary, JUnit XML and the end-of-run
failure list all print.

A turn that ended in an error (or was skipped) says so through its error; a failed turn lists its failing
assertions (`type: reason`, with the assertion's own error in brackets) and the script steps that did not go as
written; a failed turn with neither fell below its test's threshold.
"""

from __future__ import annotations

from rtflow.results.records import AssertionResult, TurnRecord

__all__ = ["assertion_reason", "failure_reason", "failure_reasons"]

_BELOW_THRESHOLD = "the weighted score is below the test's threshold"


def assertion_reason(result: AssertionResult) -> str:
    """An assertion's reason, with its error (an assertion that could not be checked) in brackets when it is not
    the reason itself (`error_result` makes the error the reason)."""
    if result.error is None or result.error == result.reason:
        return result.reason
    return f"{result.reason} ({result.error})"


def failure_reasons(turn: TurnRecord) -> list[str]:
    """Why a turn did not pass, one reason an item: its error (or why it was skipped), else its failing assertions
    and unmet steps; empty for a turn that passed or is not graded yet."""
    if turn.status in ("passed", "pending"):
        return []
    if turn.error is not None:
        kind, message = turn.error.kind, turn.error.message
        return [message if message.startswith(kind) else f"{kind}: {message}"]
    reasons = [f"{result.type}: {assertion_reason(result)}" for result in turn.assertions if not result.passed]
    if turn.output is not None:
        reasons += [f"step: {failure}" for failure in turn.output.step_failures]
    if reasons:
        return reasons
    return [_BELOW_THRESHOLD if turn.status == "failed" else turn.status]


def failure_reason(turn: TurnRecord) -> str:
    """`failure_reasons` on one line, joined by `; `; empty for a turn that passed or is not graded yet."""
    return "; ".join(failure_reasons(turn))
