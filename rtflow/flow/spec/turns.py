"""Tests and turns: promptfoo's `tests` (grouped by `metadata.conversationId`), rtflow's `threads`, their
assertions, and the normalised view (`TurnSpec`, `ThreadSpec`) the compiler reads."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from rtflow.durations import Duration
from rtflow.errors import loose_key
from rtflow.flow.assertion_types import BOUND_TYPES, split_negation
from rtflow.flow.spec.base import (
    CONVERSATION_ID_KEYS,
    _SpecModel,
)
from rtflow.flow.spec.dialogue import SimulateSpec, is_simulated_user, simulated_user_as_simulate
from rtflow.messages import PassRate

__all__ = [
    "STEP_KEYS",
    "AssertionSpec",
    "InterruptSpec",
    "StepSpec",
    "TestSpec",
    "ThreadSpec",
    "ThreadTurnSpec",
    "TurnSpec",
    "conversation_id_of",
    "pass_rate_shorthand",
]

# -------------------------------------------------------------------------------------------------- assertions


class AssertionSpec(_SpecModel):
    """One assertion on a turn's output, in promptfoo's shape."""

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset({"rubricPrompt", "contextTransform"})

    type: str = Field(min_length=1)
    """The assertion kind, e.g. `icontains`, `regex`, `llm-rubric`; a `not-` prefix inverts it.

    Checked against the kinds `rtflow.results.assertions` evaluates when the flow is loaded."""
    value: Any = None
    """What the assertion compares against: a string, a list, a rubric, a number."""
    weight: float = Field(default=1.0, ge=0)
    """Share of this assertion in the turn's score."""
    metric: str | None = None
    """A name to aggregate this assertion's results under."""
    threshold: float | None = None
    """Minimum score for a scored assertion (`javascript` returning a number, `llm-rubric`) to pass. For `latency`
    (ms) and `cost` (USD) it is promptfoo's way to write the bound, and stands for the value when none is given."""
    provider: str | dict[str, Any] | None = None
    """The grader for a model-graded assertion (a provider id, or `{id, config}`), overriding the test's
    `options.provider` and the flow's `grader`."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Extra settings for the assertion kind."""
    heard: bool = False
    """Judge what the caller heard of an answer that was cut short (`heard_text`), not all the agent said."""
    transform: str | None = None
    """promptfoo's assertion `transform`: what this assertion alone judges, made from the output (after the
    provider's and the test's transforms) by JavaScript or `file://x.py:fn`, as the test's `transform` is."""

    @model_validator(mode="after")
    def _bound_written_as_threshold(self) -> AssertionSpec:
        # promptfoo writes `- type: latency` / `threshold: 5000` (and a test file's `latency(5000)`): the bound.
        if self.value is None and self.threshold is not None and split_negation(self.type)[0] in BOUND_TYPES:
            self.value = self.threshold
        return self


# ------------------------------------------------------------------------------------------- time in the turn


class InterruptSpec(_SpecModel):
    """The caller barges in on this turn's answer; what they say is the next turn."""

    after_ms: float | None = Field(default=None, ge=0)
    """Once this many milliseconds of the answer's audio have been heard (by the playback clock)."""
    after_words: int | None = Field(default=None, ge=1)
    """Once this many words of the answer's transcript have been heard."""
    after_event: str | None = Field(default=None, min_length=1)
    """When the server sends this event type (`response.output_audio_transcript.delta`, ...)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> InterruptSpec:
        given = [name for name in ("after_ms", "after_words", "after_event") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "interrupt needs exactly one of after_ms, after_words, after_event"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class WaitForSpec(_SpecModel):
    """Wait until the server sends an event, for at most `timeout`."""

    event: str = Field(min_length=1)
    """The event type waited for."""
    timeout: Duration = 10.0
    """How long to wait before the step fails (`10s` by default)."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"event": data} if isinstance(data, str) else data


class StepSpec(_SpecModel):
    """One script step after a turn's answer: exactly one of `silence`, `wait_for`, `dtmf`."""

    silence: Duration | None = None
    """Keep the microphone open and send this long of silence (`2s`)."""
    wait_for: WaitForSpec | None = None
    """Wait for a server event: `wait_for: response.done` or `{event, timeout}`."""
    dtmf: str | None = Field(default=None, pattern=r"^[0-9*#A-D]+$")
    """Keypad tones, where the target takes them (the Realtime WebSocket API does not)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> StepSpec:
        given = [name for name in ("silence", "wait_for", "dtmf") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a step is exactly one of silence, wait_for, dtmf" + (f" (got {', '.join(given)})"))
        return self


STEP_KEYS = frozenset({"interrupt", "silence", "wait_for", "waitFor", "dtmf"})
"""Keys of a `threads:` entry that make it a step of the turn before it, not a turn of its own:

    - question: Tell me about Rome
    - interrupt: {after_ms: 600}
    - question: Just the short version
"""


# ------------------------------------------------------------------------------------------------ tests, turns


def _check_conversation_id_spelling(metadata: dict[str, Any]) -> dict[str, Any]:
    """metadata is free-form, but a near miss of `conversationId` silently splits a thread: refuse it."""
    for key in metadata:
        if key in CONVERSATION_ID_KEYS or not isinstance(key, str):
            continue
        if loose_key(key) in {"conversationid", "conversation", "convid", "threadid"}:
            raise PydanticCustomError(
                "unknown_key",
                "unknown key `{bad_key}`; did you mean `conversationId`?",
                {"bad_key": key},
            )
    present = [key for key in CONVERSATION_ID_KEYS if key in metadata]
    if len(present) == 2:
        raise ValueError("`conversationId` and `conversation_id` are the same key; write it once")
    for key in present:
        if not isinstance(metadata[key], str | int) or isinstance(metadata[key], bool) or metadata[key] == "":
            raise ValueError(f"`{key}` must be a non-empty string, got {metadata[key]!r}")
    return metadata


def conversation_id_of(metadata: dict[str, Any]) -> str | None:
    """The thread a test belongs to, from `metadata.conversationId` (or `conversation_id`)."""
    for key in CONVERSATION_ID_KEYS:
        if key in metadata:
            return str(metadata[key])
    return None


def pass_rate_shorthand(value: Any) -> Any:
    """`pass_rate: 0.8` is `pass_rate: {min: 0.8}`."""
    return {"min": value} if isinstance(value, int | float) and not isinstance(value, bool) else value


class _TurnFields(_SpecModel):
    vars: dict[str, Any] = Field(default_factory=dict)
    """Template variables; a `file://` value is read (text), parsed (.json/.yaml) or kept as a path (audio)."""
    assert_: list[AssertionSpec] = Field(default_factory=list, alias="assert")
    """Assertions on this turn's output."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form; `conversationId` groups tests into one thread."""
    options: dict[str, Any] = Field(default_factory=dict)
    """promptfoo test options (grader `provider`, ...), passed on to the assertions."""
    description: str | None = None
    """A name for the turn in reports."""
    threshold: float | None = None
    """Minimum weighted score for the turn to pass (default: every assertion passes)."""
    repeat: int | None = Field(default=None, ge=1)
    """Run this test's thread this many times (the thread takes the largest `repeat` of its tests)."""
    pass_rate: PassRate | None = None
    """With repeats: how often this turn must pass (`0.8`, or `{min: 0.8, confident: true}` for the interval's
    lower bound); its verdict across the repeats is then whether it did (default: `execution.pass_rate`)."""
    interrupt: InterruptSpec | None = None
    """The caller barges in on this turn's answer (after so much is heard); the next turn is what they say."""
    then: list[StepSpec] = Field(default_factory=list)
    """Script steps once this turn's answer is read: `silence: 2s`, `wait_for: EVENT`, `dtmf: "12#"`."""
    simulate: SimulateSpec | None = None
    """A model plays the caller from here on (the thread's last entry); its `assert` judges the whole dialogue."""

    @field_validator("pass_rate", mode="before")
    @classmethod
    def _pass_rate_shorthand(cls, value: Any) -> Any:
        return pass_rate_shorthand(value)

    @field_validator("metadata")
    @classmethod
    def _conversation_id(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_conversation_id_spelling(value)

    @field_validator("assert_", mode="before")
    @classmethod
    def _assert_is_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError("`assert` must be a list of assertions: write `- {type: ..., value: ...}`")
        return value


class TestSpec(_TurnFields):
    """One promptfoo test: one turn of a thread (tests sharing `metadata.conversationId` form a thread)."""

    __test__ = False  # not a pytest class, whatever its name says
    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset(
        {"provider", "providerOutput", "prompts", "scenario", "assertScoringFunction", "providers"}
    )

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """promptfoo's simulated user (`provider: {id: promptfoo:simulated-user, config: {maxTurns}}`, the persona in
        `vars.instructions`) is rtflow's `simulate:`; any other test `provider` stays a promptfoo key rtflow drops."""
        if not isinstance(data, dict) or not is_simulated_user(data.get("provider")):
            return data
        provider = data["provider"]
        config = provider.get("config") if isinstance(provider, dict) else None
        rest = {key: value for key, value in data.items() if key != "provider"}
        return {**rest, "simulate": simulated_user_as_simulate(config if isinstance(config, dict) else {})}


class ThreadTurnSpec(_TurnFields):
    """One turn in the `threads:` sugar: keys other than assert/description/metadata/options/vars are vars.

    An entry of step keys only (`- interrupt: {after_ms: 600}`, `- silence: 2s`) is a step of the turn before
    it (`step_only`); `FlowSpec.thread_specs` moves it there."""

    internal_fields: ClassVar[frozenset[str]] = frozenset({"step_only"})
    step_only: SkipJsonSchema[bool] = Field(default=False, exclude=True)
    """This entry is a step (its `interrupt` or `then`) of the turn before it, not a turn."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data and set(data) <= STEP_KEYS:
            step: dict[str, Any] = {"step_only": True}
            if "interrupt" in data:
                step["interrupt"] = data["interrupt"]
            then = [{key: value} for key, value in data.items() if key != "interrupt"]
            if then:
                step["then"] = then
            return step
        reserved = {
            "assert", "description", "metadata", "options", "vars", "interrupt", "then", "threshold", "simulate",
            "repeat", "pass_rate", "passRate",
        }  # fmt: skip
        turn: dict[str, Any] = {key: value for key, value in data.items() if key in reserved}
        loose_vars = {key: value for key, value in data.items() if key not in reserved}
        if loose_vars:
            explicit = turn.get("vars")
            turn["vars"] = {**loose_vars, **explicit} if isinstance(explicit, dict) else loose_vars
        return turn


# -------------------------------------------------------------------------------------------- normalised view


class TurnSpec(BaseModel):
    """One turn of a thread, with `default_test` merged in. Built by `FlowSpec.thread_specs()`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    vars: dict[str, Any]
    """Template variables (file:// values already read)."""
    asserts: list[AssertionSpec]
    """`default_test` assertions first, then the turn's own."""
    metadata: dict[str, Any]
    """`default_test` metadata updated by the turn's."""
    options: dict[str, Any]
    """`default_test` options updated by the turn's."""
    description: str | None
    """The turn's description."""
    threshold: float | None
    """The turn's threshold, else `default_test`'s."""
    repeat: int | None = None
    """The turn's `repeat`, else `default_test`'s."""
    pass_rate: PassRate | None = None
    """The turn's `pass_rate`, else `default_test`'s, else `execution.pass_rate`."""
    interrupt: InterruptSpec | None = None
    """Where the caller barges in on this turn's answer."""
    then: list[StepSpec] = Field(default_factory=list)
    """Script steps after this turn's answer."""
    simulate: SimulateSpec | None = None
    """This entry is a simulated dialogue (see `rtflow.flow.spec.dialogue`), the thread's last."""


class ThreadSpec(BaseModel):
    """An ordered list of turns that share one conversation history."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str
    """`metadata.conversationId`, a `threads:` key, or `test-<n>` for a test on its own."""
    turns: list[TurnSpec]
    """The turns in file order."""
