"""Valid flows load into the models the compiler reads: promptfoo forms, rtflow sugar, files and durations."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rtflow.durations import parse_duration
from rtflow.flow.loader import load, load_text
from rtflow.flow.spec import FlowSpec, PromptSpec, ProviderSpec

FLOWS = Path(__file__).parents[2] / "flows"


def test_promptfoo_realtime_suite_loads_unchanged() -> None:
    """A suite written for promptfoo's openai:realtime provider loads as it is, with nothing ignored."""
    flow = load(FLOWS / "promptfoo-realtime.yaml")
    assert flow.warnings == []
    provider = flow.providers[0]
    assert provider.id == "openai:realtime:gpt-realtime"
    assert provider.display_label == "openai:realtime:gpt-realtime"
    assert provider.config["websocketTimeout"] == 60000
    info = provider.to_info(flow.base_dir)
    assert info.config["websocket_timeout"] == 60000
    assert info.config["tool_choice"] == "auto"
    assert info.model == "gpt-realtime"
    assert info.base_dir == FLOWS
    assert [prompt.kind for prompt in flow.prompts] == ["json"]
    threads = flow.thread_specs()
    assert [(thread.id, len(thread.turns)) for thread in threads] == [("japan-travel", 2), ("test-3", 1)]
    first = threads[0].turns[0]
    assert first.vars == {
        "system_message": "You are a helpful AI assistant.",
        "question": "What are some popular tourist destinations in Japan?",
    }
    assert [assertion.type for assertion in first.asserts] == ["llm-rubric"]
    assert first.metadata == {"conversationId": "japan-travel"}
    assert first.description == "First question about Japan"


def test_threads_group_by_conversation_id_in_file_order() -> None:
    """Interleaved tests group by conversationId in order of first appearance; a lone test is `test-<n>`."""
    flow = load_text(
        """\
providers: [openai:chat:gpt-4.1-mini]
prompts: ["{{ q }}"]
defaultTest:
  vars: {tone: kind}
  assert: [{type: not-icontains, value: sorry}]
  options: {provider: openai:chat:gpt-4.1}
tests:
  - {vars: {q: a1}, metadata: {conversationId: a}}
  - {vars: {q: solo}}
  - {vars: {q: b1}, metadata: {conversation_id: b}}
  - {vars: {q: a2, tone: dry}, metadata: {conversationId: a}, threshold: 0.5, assert: [{type: icontains, value: x}]}
threads:
  c:
    - q: c1
      description: first of c
    - q: c2
      vars: {tone: warm}
      metadata: {topic: c}
"""
    )
    threads = flow.thread_specs()
    assert [thread.id for thread in threads] == ["a", "test-2", "b", "c"]
    a_turns = threads[0].turns
    assert [turn.vars for turn in a_turns] == [{"tone": "kind", "q": "a1"}, {"tone": "dry", "q": "a2"}]
    assert [assertion.type for assertion in a_turns[1].asserts] == ["not-icontains", "icontains"]
    assert a_turns[1].threshold == 0.5
    assert a_turns[0].options == {"provider": "openai:chat:gpt-4.1"}
    c_turns = threads[3].turns
    assert [turn.vars for turn in c_turns] == [{"tone": "kind", "q": "c1"}, {"tone": "warm", "q": "c2"}]
    assert c_turns[0].description == "first of c"
    assert c_turns[1].metadata == {"topic": "c"}


def test_snake_case_and_camel_case_spellings_load_the_same() -> None:
    """`defaultTest`/`default_test`, `gradingConcurrency`/`grading_concurrency` and friends are one key."""
    camel = """\
providers: [openai:chat:gpt-4.1-mini]
prompts: ["{{ q }}"]
defaultTest: {vars: {q: hi}}
tests: [{vars: {}}]
execution: {gradingConcurrency: 2, backoffBase: 250ms, backoffMax: 4s}
outputPath: results.json
"""
    snake = camel.replace("defaultTest", "default_test").replace("gradingConcurrency", "grading_concurrency")
    snake = snake.replace("backoffBase", "backoff_base").replace("backoffMax", "backoff_max")
    snake = snake.replace("outputPath: results.json", "outputs: [results.json]")
    assert load_text(camel) == load_text(snake)
    execution = load_text(camel).execution
    assert (execution.grading_concurrency, execution.backoff_base, execution.backoff_max) == (2, 0.25, 4.0)


def test_execution_durations_and_defaults() -> None:
    """Durations in the file become seconds (bare numbers are ms); left out, the documented defaults hold."""
    base = 'providers: [openai:chat:x]\nprompts: ["q"]\ntests: [{vars: {}}]\n'
    defaults = load_text(base).execution
    assert defaults.model_dump() == {
        "concurrency": 16,
        "timeout": 60.0,
        "retries": 2,
        "backoff_base": 0.5,
        "backoff_max": 8.0,
        "max_retry_after": 60.0,
        "grading_concurrency": 4,
        "repeat": 1,
        "max_cost": None,
        "fail_fast": False,
        "pass_rate": None,
    }
    assert load_text(base + "execution: {timeout: 2m}").execution.timeout == 120.0
    assert load_text(base + "execution: {timeout: 60000}").execution.timeout == 60.0
    assert load_text(base + "execution: {timeout: 1.5s}").execution.timeout == 1.5


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_units_agree(milliseconds: int) -> None:
    """`N` and `Nms` are the same duration, `Ns` a thousand times longer, for every N."""
    assert parse_duration(milliseconds) == parse_duration(f"{milliseconds}ms") == milliseconds / 1000
    assert parse_duration(f"{milliseconds}s") == pytest.approx(milliseconds)


@pytest.mark.parametrize("bad", ["", "soon", "5 minutes", "-3s", "1e3", True, None, [5]])
def test_duration_rejects_non_durations(bad: object) -> None:
    """Anything that is not a non-negative duration is refused with what was expected."""
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_promptfoo_keys_rtflow_ignores_are_warned_about_by_name() -> None:
    """promptfoo keys without an rtflow meaning load, each named in `FlowSpec.warnings`."""
    flow = load_text(
        """\
description: suite
sharing: true
tags: {team: voice}
evaluateOptions: {maxConcurrency: 4}
env: {FOO: bar}
nunjucksFilters: {upper: file://filters.js}
derivedMetrics: []
providers:
  - id: openai:chat:gpt-4.1-mini
    delay: 100
prompts: ["{{ q }}"]
tests:
  - vars: {q: hi}
    assert: [{type: icontains, value: hi, rubricPrompt: "grade {{output}}"}]
"""
    )
    named = " ".join(flow.warnings)
    for key in [
        "sharing",
        "tags",
        "evaluateOptions",
        "env",
        "nunjucksFilters",
        "derivedMetrics",
        "delay",
        "rubricPrompt",
    ]:
        assert f"`{key}`" in named
    assert len(flow.warnings) == 8


def test_var_files_are_read_parsed_or_kept_as_paths(tmp_path: Path) -> None:
    """`file://` vars: text is read, JSON and YAML parsed, audio kept as its resolved path."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "question.txt").write_text("What is in the box?\n", encoding="utf-8")
    (tmp_path / "data" / "profile.json").write_text('{"name": "Ada", "langs": ["en"]}', encoding="utf-8")
    (tmp_path / "data" / "facts.yaml").write_text("city: Kyoto\nvisits: 3\n", encoding="utf-8")
    (tmp_path / "data" / "hello.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    (tmp_path / "suite.yaml").write_text(
        """\
providers: [openai:realtime:gpt-realtime]
prompts: ["{{ question }}"]
defaultTest:
  vars: {profile: file://data/profile.json}
tests:
  - vars:
      question: file://data/question.txt
      facts: file://data/facts.yaml
      audio: file://data/hello.wav
threads:
  t:
    - question: file://data/question.txt
""",
        encoding="utf-8",
    )
    flow = load(tmp_path / "suite.yaml")
    turn = flow.thread_specs()[0].turns[0]
    assert turn.vars == {
        "profile": {"name": "Ada", "langs": ["en"]},
        "question": "What is in the box?\n",
        "facts": {"city": "Kyoto", "visits": 3},
        "audio": str((tmp_path / "data" / "hello.wav").resolve()),
    }
    assert flow.thread_specs()[1].turns[0].vars["question"] == "What is in the box?\n"


def test_load_text_resolves_files_against_base_dir(tmp_path: Path) -> None:
    """A flow loaded from a string reads its `file://` references from the given folder."""
    (tmp_path / "p.txt").write_text("Say {{ word }}", encoding="utf-8")
    (tmp_path / "w.txt").write_text("hello", encoding="utf-8")
    text = "providers: [openai:chat:x]\nprompts: [file://p.txt]\ntests: [{vars: {word: file://w.txt}}]\n"
    flow = load_text(text, source="inline.yaml", base_dir=tmp_path)
    assert flow.base_dir == tmp_path.resolve()
    assert flow.source_path is None
    assert flow.tests[0].vars == {"word": "hello"}


def test_provider_forms_normalise() -> None:
    """A provider is a bare id or a mapping; `fallback` is an id, a mapping or a list, always a list after."""
    flow = load_text(
        """\
providers:
  - openai:chat:gpt-4.1-mini
  - id: openai:realtime:gpt-realtime
    label: realtime
    fallback: openai:chat:gpt-4.1
  - id: openai:realtime:gpt-realtime-mini
    label: mini
    fallback:
      - {id: openai:chat:gpt-4.1-mini, label: chat}
      - openai:chat:gpt-4.1
prompts: ["{{ q }}"]
tests: [{vars: {q: hi}}]
grader: openai:chat:gpt-4.1-mini
"""
    )
    first, second, third = flow.providers
    assert first == ProviderSpec(id="openai:chat:gpt-4.1-mini")
    assert first.display_label == "openai:chat:gpt-4.1-mini"
    assert [spec.id for spec in second.fallback] == ["openai:chat:gpt-4.1"]
    assert [spec.display_label for spec in third.chain()] == ["mini", "chat", "openai:chat:gpt-4.1"]
    assert flow.grader == ProviderSpec(id="openai:chat:gpt-4.1-mini")


def test_prompt_forms_and_labels() -> None:
    """Prompts come as strings, `{id, label}` or `{raw, label}`; labels default to the file name or `prompt-<n>`."""
    flow = load_text(
        """\
providers: [openai:chat:x]
prompts:
  - "{{ q }}"
  - {id: file://input.json, label: promptfoo}
  - {raw: "Q: {{ q }}", label: short}
  - file://prompts/realtime_conversation.py:build
tests: [{vars: {q: hi, question: hi, system_message: s}}]
""",
        base_dir=FLOWS,
    )
    assert [prompt.kind for prompt in flow.prompts] == ["inline", "json", "inline", "python"]
    assert [prompt.display_label for prompt in flow.prompts] == [
        "prompt-1",
        "promptfoo",
        "short",
        "realtime_conversation.py:build",
    ]


@pytest.mark.parametrize(
    ("raw", "kind", "file", "label"),
    [
        ("{{ q }}", "inline", None, "prompt-1"),
        ("file://input.json", "json", "input.json", "input.json"),
        ("file://sub/Q.JSON", "json", "sub/Q.JSON", "Q.JSON"),
        ("file://prompts/ask.j2", "text", "prompts/ask.j2", "ask.j2"),
        ("file://prompts/build.py:make", "python", "prompts/build.py", "build.py:make"),
    ],
)
def test_prompt_kind_and_file_follow_raw(raw: str, kind: str, file: str | None, label: str) -> None:
    """A prompt's kind, file and default label follow from `raw`, which cannot change once validated."""
    prompt = PromptSpec(raw=raw)
    assert (prompt.kind, prompt.file, prompt.display_label) == (kind, file, label)
    copy = prompt.model_copy()
    assert (copy.kind, copy.file) == (kind, file)
    with pytest.raises(ValidationError):
        prompt.raw = "{{ other }}"


def test_yaml_anchors_and_merge_keys_work() -> None:
    """Anchors and `<<:` merges are plain YAML and load; a key written beside a merge overrides it."""
    flow = load_text(
        """\
providers:
  - id: openai:chat:gpt-4.1-mini
    label: a
    config: &shared {temperature: 0, max_concurrency: 4}
  - id: openai:chat:gpt-4.1
    label: b
    config:
      <<: *shared
      max_concurrency: 2
prompts: ["{{ q }}"]
tests: [{vars: {q: hi}}]
"""
    )
    assert flow.providers[1].config == {"temperature": 0, "max_concurrency": 2}


def test_flow_spec_validates_without_the_loader() -> None:
    """The models work on plain data too (for flows built in code), warnings included."""
    flow = FlowSpec.model_validate(
        {"providers": ["openai:chat:x"], "prompts": ["{{ q }}"], "tests": [{"vars": {"q": 1}}], "tags": {}}
    )
    assert flow.warnings == ["promptfoo key `tags` (FlowSpec) is not implemented by rtflow and is ignored"]
    assert flow.base_dir == Path.cwd()
