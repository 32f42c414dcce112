"""What a run leaves behind: one `TurnRecord` per turn of every conversation, and one `RunRecord` per run.

The scheduler builds these and hands each finished one to the run store at once, so a crash loses nothing that
finished. The store, the exports and the HTML report read only these models.

A turn's status moves `pending` (answered, assertions not yet graded) -> `passed` / `failed`; a turn whose
whole provider chain failed is `error`; the turns after an error in the same conversation are `skipped`, with
the reason. Resume re-runs `error` and missing turns, re-grades `pending` ones, and keeps the rest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rtflow.messages import Message, PassRate, TurnOutput

__all__ = [
    "AssertionResult",
    "CallAttempt",
    "DialogueTurn",
    "ErrorInfo",
    "RunRecord",
    "RunStatus",
    "TurnRecord",
    "TurnStatus",
    "new_run_id",
]

TurnStatus = Literal["pending", "passed", "failed", "error", "skipped"]
RunStatus = Literal["running", "finished", "interrupted", "crashed"]


def new_run_id() -> str:
    """A run id that sorts by when the run started and is unique without asking the store: `20261206-041717-4c2c3f`."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Record):
    """Why something failed, as data."""

    kind: str
    """A short stable name: `timeout`, `rate_limit`, `authentication`, `connection`, `skipped`, ..."""
    message: str
    """What happened, for a person. Never holds secrets."""
    status: int | None = None
    """The HTTP status, when there was one."""
    code: str | None = None
    """The API's error code, when it sent one."""
    retryable: bool = False


class CallAttempt(_Record):
    """One attempt of one call node: what the timeline in the report draws."""

    node_id: str
    provider: str
    """The label of the provider that was called."""
    attempt: int
    """1-based attempt number within the node."""
    started_at: float
    """Unix time, seconds."""
    ended_at: float
    error: ErrorInfo | None = None
    """None when the attempt succeeded."""


class AssertionResult(_Record):
    """The verdict of one assertion on one turn."""

    type: str
    """The assertion type as written, `not-` prefix included."""
    value: Any = None
    """The assertion's value (the rubric, the expected string, ...)."""
    passed: bool
    score: float
    """0..1; 1 or 0 for pass/fail assertions."""
    reason: str
    weight: float = 1.0
    metric: str | None = None
    error: str | None = None
    """Set when the assertion could not be evaluated (a grader that failed or returned garbage)."""


class DialogueTurn(_Record):
    """What a turn of a simulated conversation adds to its record."""

    caller: str
    """What the caller model said (empty when the agent spoke first)."""
    caller_audio: str | None = None
    """The caller's line as spoken (a WAV file), when the dialogue has a `voice`."""
    stop_reason: str | None = None
    """On the dialogue's last turn: why it ended (`phrase`, `tool`, `judge`, `max_turns`, `max_duration`, or
    `replay_ended` when a replayed caller had no more lines)."""
    stop_detail: str | None = None
    """What met the stop condition: the tool the agent called (`tool`), or the judge's condition (`judge`)."""


class TurnRecord(_Record):
    """One turn of one conversation, as it ended."""

    run_id: str
    node_id: str
    """The id of the turn's primary call node, for example `realtime/japan_travel/2`."""
    conversation_id: str
    thread_id: str
    turn_index: int
    """0-based position in the conversation."""
    provider: str
    """The label of the provider that answered (or, if none did, the primary's)."""
    provider_id: str
    prompt: str
    """The label of the prompt the conversation uses."""
    is_fallback: bool = False
    """Whether a fallback provider answered this turn."""
    attempts: int = 0
    """Attempts made over the whole provider chain."""
    status: TurnStatus
    vars: dict[str, Any] = Field(default_factory=dict)
    """The turn's variables (without `_conversation`)."""
    description: str | None = None
    pass_rate: PassRate | None = None
    """How often this turn must pass across the run's repeats (the flow's `pass_rate`), when the flow says."""
    prompt_messages: list[Message] = Field(default_factory=list)
    """The turn's rendered prompt (what `_conversation[i].prompt` shows later turns)."""
    request_messages: list[Message] = Field(default_factory=list)
    """The whole conversation as the model was asked to see it for this turn."""
    output: TurnOutput | None = None
    error: ErrorInfo | None = None
    assertions: list[AssertionResult] = Field(default_factory=list)
    calls: list[CallAttempt] = Field(default_factory=list)
    """Every attempt on every call node of this turn, in order."""
    started_at: float | None = None
    ended_at: float | None = None
    worker: str | None = None
    """The Ray worker that ran the turn's conversation (`--executor ray`); None when the run's own process did."""
    dialogue: DialogueTurn | None = None
    """For a turn a simulated caller led to: the caller's line (and, on the last, why the dialogue ended)."""

    @property
    def finished(self) -> bool:
        """Whether this turn needs nothing more on resume."""
        return self.status in ("passed", "failed", "skipped")


class RunRecord(_Record):
    """One run of one flow."""

    run_id: str
    flow_path: str | None = None
    description: str | None = None
    started_at: float
    ended_at: float | None = None
    status: RunStatus = "running"
    simulated: bool = False
    """Whether the run went to the local simulator rather than the real API."""
    endpoints: dict[str, str] = Field(default_factory=dict)
    """Provider label -> the base URL its calls went to (`sim` for providers the in-process simulator answered:
    its port changes from run to run). Empty for runs recorded before rtflow kept it."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Concurrency, filters, repeat and other options the run was started with."""
    total_turns: int = 0

    def resume_changes(self, *, simulated: bool, endpoints: Mapping[str, str]) -> list[str]:
        """How resuming this run with `simulated` and `endpoints` would change where its turns go, one sentence
        each; empty when nothing changes. A provider only one side knows is no change (the flow gained or lost
        it), and neither is anything about endpoints when this record predates them."""
        changes: list[str] = []
        if simulated != self.simulated:
            changes.append(
                f"run {self.run_id} was simulated (--sim) and would now go to the real endpoints"
                if self.simulated
                else f"run {self.run_id} went to the real endpoints and would now be simulated (--sim)"
            )
        for label, endpoint in sorted(endpoints.items()):
            before = self.endpoints.get(label)
            if before is not None and before != endpoint:
                changes.append(f"provider {label!r} went to {before} and would now go to {endpoint}")
        return changes
