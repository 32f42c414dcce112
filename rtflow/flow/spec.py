"""The flow file as pydantic models: what `rtflow.flow.loader.load` returns and what the compiler reads.

A flow file is a promptfoo test suite plus rtflow's own keys. Keys are snake_case; promptfoo's camelCase
spellings are accepted as aliases (`defaultTest`, `conversationId`, `gradingConcurrency`). Every model forbids
unknown keys and says which known key was probably meant. promptfoo keys that rtflow knows but does not
implement are dropped with a warning (collected in `FlowSpec.warnings`) so that promptfoo suites still load.

The JSON schema (`schemas/flow.schema.json`) is generated from these models with `flow_json_schema()`; it uses
the snake_case names and lists every camelCase alias as a property of its own, so editors accept both.
Regenerate it with `rtflow schema > schemas/flow.schema.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePosixPath
from types import UnionType
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from rtflow.durations import DURATION_PATTERN, Duration
from rtflow.errors import closest_key, did_you_mean, loose_key
from rtflow.providers.base import ProviderInfo
from rtflow.pyref import FILE_PREFIX, is_python_ref, split_python_ref

__all__ = [
    "AssertionSpec",
    "ExecutionSpec",
    "FlowSpec",
    "PromptKind",
    "PromptSpec",
    "ProviderSpec",
    "TestSpec",
    "ThreadSpec",
    "ThreadTurnSpec",
    "TurnSpec",
    "conversation_id_of",
    "flow_json_schema",
    "suggested_field",
    "unknown_key_hint",
]

PromptKind = Literal["inline", "json", "text", "python"]

CONVERSATION_ID_KEYS = ("conversationId", "conversation_id")
"""The metadata keys that group tests into one thread (promptfoo's spelling first)."""

# Characters the compiler uses to build node ids (`realtime/japan_travel/1~chat#grade`).
_NODE_ID_SEPARATORS = re.compile(r"[/~#\s]")

# Collected while one FlowSpec validates, so nested models can report dropped promptfoo keys.
_warnings_sink: ContextVar[list[str] | None] = ContextVar("rtflow_spec_warnings", default=None)


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


_ACCEPTED_KEYS: dict[type[_SpecModel], dict[str, str]] = {}


class _SpecModel(BaseModel):
    """Shared behaviour: camelCase aliases, unknown keys named with a suggestion, promptfoo keys warned about."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset()
    """promptfoo keys accepted here, dropped with a warning."""
    internal_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields set by the loader, never from the file."""

    @classmethod
    def accepted_keys(cls) -> dict[str, str]:
        """Every spelling a file may use for a field, mapped to the name pydantic validates by."""
        # Asked once per mapping of the file (50,000 times in a big suite) and fixed per class: worked out once.
        cached = _ACCEPTED_KEYS.get(cls)
        if cached is None:
            cached = _ACCEPTED_KEYS[cls] = cls._spellings()
        return cached

    @classmethod
    def _spellings(cls) -> dict[str, str]:
        spellings: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            if name in cls.internal_fields:
                continue
            canonical = field.alias or name
            spellings[canonical] = canonical
            spellings[to_camel(canonical)] = canonical
        return spellings

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """Turn a shorthand form (a bare string, say) into a mapping. Subclasses override."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _normalise_keys(cls, data: Any) -> Any:
        data = cls._shorthand(data)
        if not isinstance(data, dict):
            return data
        accepted = cls.accepted_keys()
        normalised: dict[str, Any] = {}
        written_as: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise PydanticCustomError(
                    "key_type", "keys must be strings, got {key!r}", {"key": key, "bad_key": str(key)}
                )
            canonical = accepted.get(key)
            if canonical is None:
                if key in cls.promptfoo_unimplemented:
                    _warn(f"promptfoo key `{key}` ({cls.__name__}) is not implemented by rtflow and is ignored")
                    continue
                # Left in place: `extra="forbid"` reports it with its own location, and the loader adds the
                # suggestion (`unknown_key_hint`), so every unknown key of a file is reported in one go.
                normalised[key] = value
                continue
            if canonical in normalised:
                raise PydanticCustomError(
                    "duplicate_key",
                    "`{bad_key}` and `{other}` are the same key; write it once",
                    {"bad_key": key, "other": written_as[canonical]},
                )
            normalised[canonical] = value
            written_as[canonical] = key
        return normalised


def _located(path: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """A whole-flow error that knows which key it is about (validation would place it at the root)."""
    return PydanticCustomError("flow_consistency", "{reason}", {"reason": message, "at": path})


def _warn(message: str) -> None:
    sink = _warnings_sink.get()
    if sink is not None and message not in sink:
        sink.append(message)


@contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Collect the warnings nested models raise while a flow validates."""
    sink: list[str] = []
    token = _warnings_sink.set(sink)
    try:
        yield sink
    finally:
        _warnings_sink.reset(token)


# --------------------------------------------------------------------------------------------------- providers


class ProviderSpec(_SpecModel):
    """One provider entry: a bare id string, or a mapping with a label, config and fallbacks."""

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset({"delay", "transform", "prompts", "env"})

    id: str = Field(pattern=r"^[^:\s]+:[^:\s]+(:\S.*)?$")
    """`kind:api:model`, for example `openai:realtime:gpt-realtime` or `openai:chat:gpt-4.1-mini`."""
    label: str | None = None
    """Display name and node-id prefix; defaults to the id. No `/`, `~`, `#` or spaces."""
    config: dict[str, Any] = Field(default_factory=dict, repr=False)  # may hold a rendered key: keep out of reprs
    """Provider settings as written (after `{{ env.NAME }}` rendering); each provider validates its own keys."""
    fallback: list[ProviderSpec] = Field(default_factory=list)
    """Providers tried in order when this one fails after its retries; a single id or entry is accepted."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"id": data} if isinstance(data, str) else data

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_as_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    @field_validator("label")
    @classmethod
    def _label_fits_node_ids(cls, value: str | None) -> str | None:
        if value is not None and (not value or _NODE_ID_SEPARATORS.search(value)):
            raise ValueError(f"a label must be non-empty and hold no '/', '~', '#' or spaces, got {value!r}")
        return value

    @property
    def display_label(self) -> str:
        """The label, or the id when there is none."""
        return self.label or self.id

    def to_info(self, base_dir: Path) -> ProviderInfo:
        """The provider interface's view: config keys in snake_case, `file://` resolving against `base_dir`."""
        config = {_snake_case(key): value for key, value in self.config.items()}
        return ProviderInfo(id=self.id, label=self.display_label, config=config, base_dir=base_dir)

    def chain(self) -> list[ProviderSpec]:
        """This provider followed by its fallbacks (and theirs), in the order they are tried."""
        result: list[ProviderSpec] = [self]
        for fallback in self.fallback:
            result.extend(fallback.chain())
        return result


def _snake_case(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


# ----------------------------------------------------------------------------------------------------- prompts


class PromptSpec(_SpecModel):
    """One prompt: an inline Jinja2 template or a `file://` reference (JSON, text or Python function)."""

    raw: str = Field(min_length=1)
    """The inline template, or `file://x.json`, `file://x.txt`/`.j2`/`.md`, or `file://x.py:function`."""
    label: str | None = None
    """Display name; defaults to the file name, else `prompt-<n>`."""

    model_config = ConfigDict(frozen=True)  # `kind` and `file` are worked out from `raw` once, so `raw` stays put

    _position: int = PrivateAttr(default=1)
    _kind: PromptKind = PrivateAttr(default="inline")
    _file: str | None = PrivateAttr(default=None)
    _sources: dict[Path, str] = PrivateAttr(default_factory=dict)
    """The template file's text by the folder it was resolved against: read once, not once per turn."""

    @classmethod
    def _spellings(cls) -> dict[str, str]:
        # promptfoo writes `{id: file://..., label: ...}` for a prompt file.
        return {**super()._spellings(), "id": "raw"}

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"raw": data} if isinstance(data, str) else data

    @field_validator("raw")
    @classmethod
    def _known_file_kind(cls, value: str) -> str:
        if not value.startswith(FILE_PREFIX):
            return value
        path = value[len(FILE_PREFIX) :]
        if any(char in path for char in "*?["):
            raise ValueError(f"prompt globs are not supported; list each file, got {value!r}")
        if path.endswith(".py"):
            raise ValueError(f"name the function to call: file://{path}:function_name")
        if is_python_ref(value):
            return value
        if PurePosixPath(path).suffix.lower() not in _TEXT_SUFFIXES | {".json"}:
            raise ValueError(
                f"unsupported prompt file {value!r}; expected .json, .txt, .j2, .md or file://x.py:function"
            )
        return value

    @model_validator(mode="after")
    def _classify(self) -> PromptSpec:
        # Rendering a turn reads `kind` and `file` several times; they are worked out here, once per prompt.
        if not self.raw.startswith(FILE_PREFIX):
            return self
        if is_python_ref(self.raw):
            self._kind = "python"
            self._file = split_python_ref(self.raw)[0]
        else:
            self._kind = "json" if self.raw.lower().endswith(".json") else "text"
            self._file = self.raw[len(FILE_PREFIX) :]
        return self

    @property
    def kind(self) -> PromptKind:
        """`inline`, `json`, `text` or `python`."""
        return self._kind

    @property
    def file(self) -> str | None:
        """The referenced file as written (relative to the flow file), or None for an inline template."""
        return self._file

    @property
    def display_label(self) -> str:
        """The label, else the file name (with `:function` for Python), else `prompt-<n>`."""
        if self.label:
            return self.label
        if self._file is not None:
            name = PurePosixPath(self._file).name
            return f"{name}:{split_python_ref(self.raw)[1]}" if self._kind == "python" else name
        return f"prompt-{self._position}"


_TEXT_SUFFIXES = frozenset({".txt", ".j2", ".jinja", ".jinja2", ".md"})


# -------------------------------------------------------------------------------------------------- assertions


class AssertionSpec(_SpecModel):
    """One assertion on a turn's output, in promptfoo's shape."""

    promptfoo_unimplemented: ClassVar[frozenset[str]] = frozenset({"transform", "rubricPrompt", "contextTransform"})

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
    """Minimum score for a scored assertion (similarity, latency in ms, cost) to pass."""
    provider: str | None = None
    """The grader for a model-graded assertion, overriding the flow's `grader`."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Extra settings for the assertion kind."""


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


class ThreadTurnSpec(_TurnFields):
    """One turn in the `threads:` sugar: keys other than assert/description/metadata/options/vars are vars."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        reserved = {"assert", "description", "metadata", "options", "vars"}
        turn: dict[str, Any] = {key: value for key, value in data.items() if key in reserved}
        loose_vars = {key: value for key, value in data.items() if key not in reserved}
        if loose_vars:
            explicit = turn.get("vars")
            turn["vars"] = {**loose_vars, **explicit} if isinstance(explicit, dict) else loose_vars
        return turn


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
    grading_concurrency: int = Field(default=4, ge=1)
    """The most model-graded assertions in flight at once."""


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


class ThreadSpec(BaseModel):
    """An ordered list of turns that share one conversation history."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str
    """`metadata.conversationId`, a `threads:` key, or `test-<n>` for a test on its own."""
    turns: list[TurnSpec]
    """The turns in file order."""


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
    """Files the results are written to at the end of a run (`.json`, `.jsonl`, `.csv`, `.html`)."""

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

    @field_validator("threads")
    @classmethod
    def _threads_not_empty(cls, value: dict[str, list[ThreadTurnSpec]]) -> dict[str, list[ThreadTurnSpec]]:
        for thread_id, turns in value.items():
            if not turns:
                raise ValueError(f"thread `{thread_id}` has no turns")
            if _NODE_ID_SEPARATORS.search(thread_id):
                raise ValueError(f"thread id {thread_id!r} may not hold '/', '~', '#' or spaces")
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
        """`turn` with `default_test` merged in."""
        default = self.default_test
        if default is None:
            return TurnSpec(
                vars=dict(turn.vars),
                asserts=list(turn.assert_),
                metadata=dict(turn.metadata),
                options=dict(turn.options),
                description=turn.description,
                threshold=turn.threshold,
            )
        return TurnSpec(
            vars={**default.vars, **turn.vars},
            asserts=[*default.assert_, *turn.assert_],
            metadata=self._merged_metadata(turn),
            options={**default.options, **turn.options},
            description=turn.description if turn.description is not None else default.description,
            threshold=turn.threshold if turn.threshold is not None else default.threshold,
        )

    def thread_specs(self) -> list[ThreadSpec]:
        """The threads in order: tests grouped by conversationId (first appearance), then `threads:`."""
        grouped: dict[str, list[TurnSpec]] = {}
        for position, test in enumerate(self.tests, start=1):
            conversation_id = conversation_id_of(self._merged_metadata(test))
            thread_id = conversation_id if conversation_id is not None else f"test-{position}"
            grouped.setdefault(thread_id, []).append(self.merged_turn(test))
        for thread_id, turns in self.threads.items():
            grouped.setdefault(thread_id, []).extend(self.merged_turn(turn) for turn in turns)
        return [ThreadSpec(id=thread_id, turns=turns) for thread_id, turns in grouped.items()]


# ----------------------------------------------------------------------------------------------------- schema


def flow_json_schema() -> dict[str, Any]:
    """The JSON schema of a flow file (draft 2020-12).

    Generated from the models in validation mode with the snake_case names; each camelCase alias is listed as
    a property of its own, and the shorthand forms the validators accept (a bare provider id or prompt, a
    single fallback, duration strings, loose vars in `threads`) are added where pydantic cannot see them.
    """
    schema = FlowSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rtflow flow file"
    definitions: dict[str, Any] = schema.setdefault("$defs", {})
    models: dict[str, type[_SpecModel]] = {
        model.__name__: model
        for model in (FlowSpec, ProviderSpec, PromptSpec, AssertionSpec, TestSpec, ThreadTurnSpec, ExecutionSpec)
    }
    for name, definition in [("FlowSpec", schema), *definitions.items()]:
        model = models.get(name)
        properties = definition.get("properties")
        if model is None or not isinstance(properties, dict):
            continue
        for spelling, canonical in sorted(model.accepted_keys().items()):
            if spelling not in properties and canonical in properties:
                properties[spelling] = {**properties[canonical], "description": f"Alias of `{canonical}`."}
    _add_shorthands(schema, definitions)
    return schema


def _add_shorthands(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    provider_id = {"type": "string", "description": "A provider id, `kind:api:model`."}
    for name, shorthand in (("ProviderSpec", provider_id), ("PromptSpec", {"type": "string"})):
        mapping_form = definitions[name]
        definitions[name] = {"anyOf": [shorthand, mapping_form], "description": mapping_form.get("description")}
    provider_ref = {"$ref": "#/$defs/ProviderSpec"}
    fallback = definitions["ProviderSpec"]["anyOf"][1]["properties"]["fallback"]
    fallback.pop("type", None)
    fallback["anyOf"] = [provider_ref, {"type": "array", "items": provider_ref}]
    fallback.pop("items", None)
    duration = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]}
    execution = definitions["ExecutionSpec"]["properties"]
    for key in ("timeout", "backoff_base", "backoff_max", "backoffBase", "backoffMax"):
        if key in execution:
            execution[key] = {**duration, "default": f"{execution[key]['default']:g}s", "description": (
                execution[key].get("description", "") + " A duration: `60s`, `500ms`, `2m`, or milliseconds."
            ).strip()}  # fmt: skip
    # In the `threads` sugar every key besides the reserved ones is a var.
    definitions["ThreadTurnSpec"]["additionalProperties"] = True
    for key in ("outputs", "outputPath"):
        outputs = schema["properties"][key]
        schema["properties"][key] = {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": outputs.get("description"),
        }


def schema_text() -> str:
    """The schema as committed in `schemas/flow.schema.json`."""
    return json.dumps(flow_json_schema(), indent=2, sort_keys=True) + "\n"
