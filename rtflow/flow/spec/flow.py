"""The whole flow file (`FlowSpec`) and its `execution` settings; where an unknown key's suggestion is found."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from rtflow.durations import Duration
from rtflow.errors import closest_key, did_you_mean
from rtflow.flow.assertion_types import is_model_graded
from rtflow.flow.spec.base import (
    _NODE_ID_SEPARATORS,
    _located,
    _SpecModel,
    _warnings_sink,
    collecting_warnings,
)
from rtflow.flow.spec.prompts import (
    PromptSpec,
)
from rtflow.flow.spec.providers import (
    ProviderSpec,
)
from rtflow.flow.spec.turns import (
    TestSpec,
    ThreadSpec,
    ThreadTurnSpec,
    TurnSpec,
    _TurnFields,
    conversation_id_of,
    pass_rate_shorthand,
)
from rtflow.messages import PassRate
from rtflow.output_paths import export_format_problem

__all__ = ["ExecutionSpec", "FlowSpec", "suggested_field", "unknown_key_hint"]


def unknown_key_hint(loc: tuple[str | int, ...]) -> str:
    """For an unknown key at `loc` (a validation error's location), the closest key its model knows."""
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    return did_you_mean(str(loc[-1]), model.accepted_keys())


def suggested_field(loc: tuple[str | int, ...]) -> str | None:
    """The field name an unknown key at `loc` most likely meant, when one is close."""
    model = _model_at(loc[:-1])
    if model is None:
        return None
    accepted = model.accepted_keys()
    suggestion = closest_key(str(loc[-1]), sorted(accepted))
    return accepted[suggestion] if suggestion is not None else None


def _model_at(loc: tuple[str | int, ...]) -> type[_SpecModel] | None:
    annotation: Any = FlowSpec
    for part in loc:
        annotation = _unwrap_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, _SpecModel):
            fields = {field.alias or name: field for name, field in annotation.model_fields.items()}
            field = fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            continue
        arguments = get_args(annotation)
        if get_origin(annotation) is list and isinstance(part, int) and arguments:
            annotation = arguments[0]
        elif get_origin(annotation) is dict and isinstance(part, str) and len(arguments) == 2:
            annotation = arguments[1]
        else:
            return None
    annotation = _unwrap_optional(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, _SpecModel) else None


def _unwrap_optional(annotation: Any) -> Any:
    arguments = [argument for argument in get_args(annotation) if argument is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(arguments) == 1:
        return arguments[0]
    return annotation


# --------------------------------------------------------------------------------------------------- execution


class ExecutionSpec(_SpecModel):
    """How the run goes: limits, timeouts and retries. Durations are read as `60s`, `500ms`, `2m` or ms."""

    concurrency: int = Field(default=16, ge=1)
    """The most provider calls in flight at once, across the run."""
    timeout: Duration = Field(default=60.0, gt=0)
    """Per attempt, in seconds once loaded."""
    retries: int = Field(default=2, ge=0)
    """Retries of a call node (after the first attempt) before its fallback runs."""
    backoff_base: Duration = Field(default=0.5, ge=0)
    """First retry delay, in seconds once loaded; doubles per retry (full jitter)."""
    backoff_max: Duration = Field(default=8.0, ge=0)
    """Longest retry delay, in seconds once loaded."""
    max_retry_after: Duration = Field(default=60.0, ge=0)
    """Longest wait a server may ask for (`Retry-After`, an exhausted rate limit's reset); longer asks are
    capped here, and the log says so. A server that says "come back in 11 days" must not stall the run."""
    grading_concurrency: int = Field(default=4, ge=1)
    """The most model-graded assertions in flight at once."""
    repeat: int = Field(default=1, ge=1)
    """How many times each conversation runs (`--repeat` overrides it)."""
    max_cost: float | None = Field(default=None, gt=0)
    """A budget in US dollars (`--max-cost` overrides it): once the stored answers cost this much, no new turn
    starts and the rest are recorded `skipped` with the reason `budget`. Calls in flight still finish."""
    fail_fast: bool = False
    """Start no new turn once one has failed or could not be answered; the rest are recorded `skipped`."""
    pass_rate: PassRate | None = None
    """With repeats: how often every turn must pass, unless a test sets its own `pass_rate` (see `TestSpec`)."""

    @field_validator("pass_rate", mode="before")
    @classmethod
    def _pass_rate_shorthand(cls, value: Any) -> Any:
        return pass_rate_shorthand(value)


# ------------------------------------------------------------------------------------------------------- flow


class FlowSpec(_SpecModel):
    """A whole flow file."""

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset(
        {
            "sharing", "tags", "evaluateOptions", "env", "nunjucksFilters", "scenarios", "derivedMetrics",
            "extensions", "writeLatestResults", "redteam", "commandLineOptions", "metadata", "tracing",
        }
    )  # fmt: skip
    internal_fields: ClassVar[frozenset[str]] = frozenset({"source_path", "warnings"})

    description: str | None = None
    """What the suite tests."""
    providers: list[ProviderSpec] = Field(min_length=1)
    """The provider columns; every thread runs against each one."""
    prompts: list[PromptSpec] = Field(min_length=1)
    """The prompt columns; every thread runs with each one."""
    default_test: TestSpec | None = None
    """vars, assertions, options and metadata merged into every turn."""
    tests: list[TestSpec] = Field(default_factory=list)
    """promptfoo's form: one entry per turn; `metadata.conversationId` groups them into threads."""
    threads: dict[str, list[ThreadTurnSpec]] = Field(default_factory=dict)
    """rtflow's form: `{thread_id: [turn, ...]}`."""
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    """Concurrency, timeouts, retries."""
    grader: ProviderSpec | None = None
    """The provider that grades model-graded assertions (`llm-rubric`, ...)."""
    outputs: list[str] = Field(default_factory=list)
    """Files the results are written to at the end of a run (`.json`, `.jsonl`, `.csv`, `.html`, JUnit `.xml`,
    Markdown `.md`), relative to the flow file's folder like every path a flow names; checked before the first
    request."""

    source_path: SkipJsonSchema[Path | None] = Field(default=None, exclude=True)
    """The file the flow was loaded from (set by the loader)."""
    warnings: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True)
    """Things that load but will not do what the writer may expect (promptfoo keys rtflow ignores, ...)."""

    _base_dir: Path | None = PrivateAttr(default=None)
    _resolved: bool = PrivateAttr(default=False)

    @classmethod
    def _spellings(cls) -> dict[str, str]:
        # promptfoo's `outputPath` (a file or a list of files) is rtflow's `outputs`.
        return {**super()._spellings(), "outputPath": "outputs"}

    @model_validator(mode="wrap")
    @classmethod
    def _collect_warnings(cls, data: Any, handler: Callable[[Any], FlowSpec]) -> FlowSpec:
        outer = _warnings_sink.get()
        with collecting_warnings() as sink:
            flow = handler(data)
        flow.warnings = [*flow.warnings, *(message for message in sink if message not in flow.warnings)]
        if outer is not None:
            outer.extend(flow.warnings)
        return flow

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("outputs")
    @classmethod
    def _outputs_known_formats(cls, value: list[str]) -> list[str]:
        for path in value:
            problem = export_format_problem(path)
            if problem is not None:
                raise ValueError(f"{path!r}: {problem}")
        return value

    @field_validator("threads")
    @classmethod
    def _threads_not_empty(cls, value: dict[str, list[ThreadTurnSpec]]) -> dict[str, list[ThreadTurnSpec]]:
        for thread_id, turns in value.items():
            if not turns:
                raise ValueError(f"thread `{thread_id}` has no turns")
            if _NODE_ID_SEPARATORS.search(thread_id):
                raise ValueError(f"thread id {thread_id!r} may not hold '/', '~', '#' or spaces")
            if turns[0].step_only:
                raise ValueError(f"thread `{thread_id}` starts with a step; a step needs a turn before it")
            for before, turn in itertools.pairwise(turns):
                if turn.step_only and turn.interrupt is not None and before.interrupt is not None:
                    raise ValueError(f"thread `{thread_id}` has two interrupts for one turn; write a turn between")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FlowSpec:
        for position, prompt in enumerate(self.prompts, start=1):
            prompt._position = position
        self._check_labels()
        self._check_thread_ids()
        if not self.tests and not self.threads:
            raise ValueError("the flow has no tests and no threads: nothing to run")
        return self

    def _check_labels(self) -> None:
        # Fallback labels are the compiler's to check: only it knows which bare fallback ids (`fallback:
        # openai:chat:gpt-4.1-mini`) mean a top-level provider, config and all, rather than a second provider.
        top_level: set[str] = set()
        for position, provider in enumerate(self.providers):
            if provider.display_label in top_level:
                raise _located(
                    ("providers", position, "label"),
                    f"two providers are labelled `{provider.display_label}`; give each a distinct `label`",
                )
            top_level.add(provider.display_label)
        if len({prompt.display_label for prompt in self.prompts}) != len(self.prompts):
            raise ValueError("two prompts share a label; give each a distinct `label`")

    def _check_thread_ids(self) -> None:
        from_tests = {conversation_id_of(self._merged_metadata(test)) for test in self.tests} - {None}
        for thread_id in self.threads:
            if thread_id in from_tests:
                raise _located(
                    ("threads", thread_id),
                    f"thread `{thread_id}` is defined both by tests (metadata.conversationId) and in `threads`",
                )
        for conversation_id in from_tests:
            if conversation_id is not None and _NODE_ID_SEPARATORS.search(conversation_id):
                raise ValueError(f"conversationId {conversation_id!r} may not hold '/', '~', '#' or spaces")

    def _merged_metadata(self, turn: _TurnFields) -> dict[str, Any]:
        defaults = self.default_test.metadata if self.default_test is not None else {}
        return {**defaults, **turn.metadata}

    @property
    def base_dir(self) -> Path:
        """The flow file's folder (where `file://` references resolve), or the working directory."""
        if self._base_dir is not None:
            return self._base_dir
        return self.source_path.parent if self.source_path is not None else Path.cwd()

    @property
    def resolved(self) -> bool:
        """Whether the resolve step (`rtflow.flow.resolve`) has checked and completed this flow."""
        return self._resolved

    def mark_resolved(self) -> None:
        """Called by the resolve step once every check passed."""
        self._resolved = True

    def set_base_dir(self, base_dir: Path) -> None:
        """Resolve `file://` references against `base_dir` (for flows loaded from a string)."""
        self._base_dir = base_dir

    def merged_turn(self, turn: _TurnFields) -> TurnSpec:
        """`turn` with `default_test` merged in; a test's `options.provider` grades its model-graded assertions
        that name no grader of their own (promptfoo's rule)."""
        merged = self._merged_turn(turn)
        grader = merged.options.get("provider")
        if grader is None:
            return merged
        asserts = [
            assertion.model_copy(update={"provider": grader})
            if assertion.provider is None and is_model_graded(assertion.type)
            else assertion
            for assertion in merged.asserts
        ]
        return merged.model_copy(update={"asserts": asserts})

    def _merged_turn(self, turn: _TurnFields) -> TurnSpec:
        default = self.default_test
        if default is None:
            return TurnSpec(
                vars=dict(turn.vars),
                asserts=list(turn.assert_),
                metadata=dict(turn.metadata),
                options=dict(turn.options),
                description=turn.description,
                threshold=turn.threshold,
                repeat=turn.repeat,
                pass_rate=turn.pass_rate or self.execution.pass_rate,
                interrupt=turn.interrupt,
                then=list(turn.then),
                simulate=turn.simulate,
            )
        return TurnSpec(
            vars={**default.vars, **turn.vars},
            asserts=[*default.assert_, *turn.assert_],
            metadata=self._merged_metadata(turn),
            options={**default.options, **turn.options},
            description=turn.description if turn.description is not None else default.description,
            threshold=turn.threshold if turn.threshold is not None else default.threshold,
            repeat=turn.repeat or default.repeat,
            pass_rate=turn.pass_rate or default.pass_rate or self.execution.pass_rate,
            interrupt=turn.interrupt,
            then=list(turn.then),
            # promptfoo's `defaultTest.provider: promptfoo:simulated-user` makes every *test* a dialogue.
            simulate=turn.simulate if turn.simulate is not None or not isinstance(turn, TestSpec) else default.simulate,
        )

    def thread_specs(self) -> list[ThreadSpec]:
        """The threads in order: tests grouped by conversationId (first appearance), then `threads:`."""
        grouped: dict[str, list[TurnSpec]] = {}
        for position, test in enumerate(self.tests, start=1):
            conversation_id = conversation_id_of(self._merged_metadata(test))
            thread_id = conversation_id if conversation_id is not None else f"test-{position}"
            grouped.setdefault(thread_id, []).append(self.merged_turn(test))
        for thread_id, turns in self.threads.items():
            merged = grouped.setdefault(thread_id, [])
            for turn in turns:
                if not turn.step_only:
                    merged.append(self.merged_turn(turn))
                    continue
                before = merged[-1]  # the validator saw to it that a step follows a turn
                merged[-1] = before.model_copy(
                    update={"interrupt": turn.interrupt or before.interrupt, "then": [*before.then, *turn.then]}
                )
        return [ThreadSpec(id=thread_id, turns=turns) for thread_id, turns in grouped.items()]
