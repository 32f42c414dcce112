"""A broken flow file fails with a message that names the problem and its place, one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtflow.errors import FlowLoadError
from rtflow.flow.loader import load, load_text

INVALID = Path(__file__).parent / "invalid"

# file -> (line, key path or None, fragments the message must hold)
CASES: dict[str, tuple[int, str | None, list[str]]] = {
    "unknown_top_key.yaml": (2, "promts", ["unknown key `promts`", "did you mean `prompts`?"]),
    "unknown_camel_key.yaml": (3, "defaultTests", ["unknown key `defaultTests`", "did you mean `defaultTest`?"]),
    "conversation_id_typo.yaml": (6, "tests.0.metadata.conversationID", ["did you mean `conversationId`?"]),
    "unknown_provider_key.yaml": (3, "providers.0.lable", ["unknown key `lable`", "did you mean `label`?"]),
    "unknown_assert_key.yaml": (7, "tests.0.assert.0.vale", ["unknown key `vale`", "did you mean `value`?"]),
    "wrong_type_concurrency.yaml": (6, "execution.concurrency", ["expected a whole number", "'lots'"]),
    "bad_duration.yaml": (6, "execution.timeout", ["expected a duration such as 60s, 500ms, 2m", "'5 minutes'"]),
    "negative_retries.yaml": (6, "execution.retries", ["expected a number >= 0", "-1"]),
    "missing_provider_id.yaml": (2, "providers.0.id", ["missing required key `id`"]),
    "bad_provider_id.yaml": (2, "providers.0", ["kind:api:model", "'gpt-4.1-mini'"]),
    "no_providers.yaml": (1, "providers", ["expected at least 1 entry"]),
    "fallback_wrong_type.yaml": (3, "providers.0.fallback", ["expected a mapping", "42"]),
    "bad_label.yaml": (3, "providers.0.label", ["'chat/mini'", "no '/'"]),
    "duplicate_labels.yaml": (5, "providers.1.label", ["two providers are labelled `model`"]),
    "bad_prompt_file.yaml": (3, "prompts.0", ["prompt file support/no-such-prompt.json", "no such prompt file"]),
    "prompt_py_without_function.yaml": (3, "prompts.0", ["file://support/prompt_functions.py:function_name"]),
    "unsupported_prompt_kind.yaml": (3, "prompts.0.id", ["unsupported prompt file", "prompts.csv"]),
    "template_syntax.yaml": (3, "prompts.0", ["template syntax error"]),
    "missing_var_file.yaml": (5, "tests.0.vars.question", ["var file not found", "no-such-question.txt"]),
    "invalid_json_var_file.yaml": (6, "tests.0.vars.profile", ["broken-data.json is not valid JSON"]),
    "yaml_syntax.yaml": (2, None, ["YAML syntax error", "expected ',' or ']'"]),
    "tabs.yaml": (4, None, ["a tab is used for indentation", "spaces"]),
    "empty.yaml": (1, None, ["the flow file is empty"]),
    "top_level_list.yaml": (1, None, ["the top level must be a mapping", "got a list"]),
    "duplicate_key.yaml": (5, None, ["duplicate key 'providers'"]),
    "duplicate_alias.yaml": (5, "defaultTest", ["`defaultTest` and `default_test` are the same key"]),
    "assert_not_list.yaml": (5, "tests.0.assert", ["must be a list of assertions"]),
    "assert_missing_type.yaml": (6, "tests.0.assert.0.type", ["missing required key `type`"]),
    "assert_is_string.yaml": (6, "tests.0.assert.0", ["expected a mapping", "'icontains hi'"]),
    "unknown_assert_type.yaml": (6, "tests.0.assert.0.type", ["'not-icontain'", "did you mean `not-icontains`?"]),
    "missing_env.yaml": (4, "providers.0.config.apiKey", ["environment variable `RTFLOW_TEST_SURELY_UNSET_KEY`"]),
    "json_template_invalid.yaml": (5, "tests.0", ["prompt file support/unquoted.json", "renders invalid JSON"]),
    "missing_template_var.yaml": (7, "tests.1", ["missing variable `topic`", "inline prompt `prompt-1`"]),
    "nothing_to_run.yaml": (1, None, ["no tests and no threads"]),
    "thread_id_clash.yaml": (7, "threads.travel", ["thread `travel` is defined both by tests"]),
    "empty_thread.yaml": (3, "threads", ["thread `travel` has no turns"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_flow_names_problem_and_place(name: str) -> None:
    """Each invalid file fails with its file, line, key path and a message saying what is wrong."""
    line, key_path, fragments = CASES[name]
    path = INVALID / name
    with pytest.raises(FlowLoadError) as caught:
        load(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == line
    assert error.key_path == key_path
    text = str(error)
    assert text.startswith(f"{path}:{line}:")
    for fragment in fragments:
        assert fragment in text
    assert error.exit_code == 2


def test_every_invalid_sample_is_checked() -> None:
    """No file in tests/dsl/invalid goes without an expectation."""
    assert sorted(path.name for path in INVALID.glob("*.yaml")) == sorted(CASES)


def test_several_problems_are_reported_together_one_line_each() -> None:
    """All problems of a file come in one error, in file order, one line each with its own place."""
    text = """\
providers:
  - id: openai:chat:gpt-4.1-mini
    lable: chat
prompts: ["{{ question }}"]
execution:
  concurency: 3
  timeout: soon
tests:
  - vars: {question: Hi}
"""
    with pytest.raises(FlowLoadError) as caught:
        load_text(text, source="suite.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 problems in suite.yaml:"
    assert lines[1].startswith("suite.yaml:3:5: providers.0.lable: unknown key `lable`; did you mean `label`?")
    assert lines[2].startswith("suite.yaml:6:3: execution.concurency: unknown key `concurency`")
    assert lines[3].startswith("suite.yaml:7:3: execution.timeout: expected a duration")
    assert caught.value.line == 3


def test_missing_flow_file_is_a_load_error() -> None:
    """A path that does not exist is a FlowLoadError naming the path."""
    with pytest.raises(FlowLoadError, match=r"no-such-flow\.yaml: no such flow file"):
        load(INVALID / "no-such-flow.yaml")


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rendered env value (an API key) is not echoed by errors about the provider that holds it."""
    monkeypatch.setenv("RTFLOW_TEST_SECRET_KEY", "sk-very-secret-123")
    text = """\
providers:
  - label: chat
    config: {apiKey: "{{ env.RTFLOW_TEST_SECRET_KEY }}"}
    fallback: 7
prompts: ["{{ question }}"]
tests: [{vars: {question: Hi}}]
"""
    with pytest.raises(FlowLoadError) as caught:
        load_text(text)
    assert "providers.0.id: missing required key `id`" in str(caught.value)
    assert "providers.0.fallback: expected a mapping" in str(caught.value)
    assert "sk-very-secret-123" not in str(caught.value)


def test_unset_env_variable_is_named_but_set_ones_are_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """`{{ env.NAME }}` in provider config is replaced by the value; an unset one is named, not guessed."""
    monkeypatch.setenv("RTFLOW_TEST_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("RTFLOW_TEST_UNSET", raising=False)
    good = """\
providers:
  - id: openai:chat:gpt-4.1-mini
    config: {api_base_url: "{{ env.RTFLOW_TEST_BASE }}", headers: {x-base: "at {{env.RTFLOW_TEST_BASE}}"}}
prompts: ["{{ question }}"]
tests: [{vars: {question: Hi}}]
"""
    flow = load_text(good)
    assert flow.providers[0].config == {
        "api_base_url": "http://127.0.0.1:9/v1",
        "headers": {"x-base": "at http://127.0.0.1:9/v1"},
    }
    with pytest.raises(FlowLoadError, match=r"environment variable `RTFLOW_TEST_UNSET` is not set"):
        load_text(good.replace("RTFLOW_TEST_BASE }}", "RTFLOW_TEST_UNSET }}"))


def test_template_errors_are_not_repeated_per_turn() -> None:
    """A prompt that fails for every turn is reported once, at the first turn."""
    text = """\
providers: [openai:chat:gpt-4.1-mini]
prompts: ["{{ missing_everywhere }}"]
tests:
  - vars: {question: one}
  - vars: {question: two}
"""
    with pytest.raises(FlowLoadError) as caught:
        load_text(text, source="twice.yaml")
    assert str(caught.value).count("missing variable `missing_everywhere`") == 1
    assert caught.value.key_path == "tests.0"
