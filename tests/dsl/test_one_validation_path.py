"""One validation path: parse -> validate -> resolve -> compile, each rule checked once, every error placed.

A flow loaded from a file and a `FlowSpec` built in code go through the same resolve step; from a file its
problems carry file:line:column and the key path, from code the key path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rtflow
from rtflow.errors import FlowLoadError
from rtflow.flow.resolve import resolve
from rtflow.flow.spec import FlowSpec


def _write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_unknown_provider_kind_in_a_file_names_file_line_column_and_key(tmp_path: Path) -> None:
    """The provider-kind check lives in resolve (not the compiler), so it is placed like every load error."""
    flow = _write(
        tmp_path,
        "prompts: ['{{ q }}']\nproviders:\n  - id: openai:realtim:gpt-realtime\ntests: [{vars: {q: hi}}]\n",
    )
    with pytest.raises(FlowLoadError) as caught:
        rtflow.load(flow)
    assert str(caught.value).startswith(f"{flow}:3:5: providers.0.id: unknown provider kind 'openai:realtim'")
    assert "did you mean `openai:realtime`?" in str(caught.value)


def test_a_missing_prompt_function_is_a_load_error(tmp_path: Path) -> None:
    """`file://p.py:nosuch` fails at load (and so at `rtflow validate`), not on every turn of the run."""
    (tmp_path / "p.py").write_text("def build(context):\n    return 'hi'\n")
    flow = _write(
        tmp_path, "providers: [openai:chat:gpt-4.1-mini]\nprompts:\n  - file://p.py:nosuch\ntests: [{vars: {q: 1}}]\n"
    )
    with pytest.raises(FlowLoadError) as caught:
        rtflow.load(flow)
    message = str(caught.value)
    assert message.startswith(f"{flow}:3:5: prompts.0:") and "has no function 'nosuch' (it has: build)" in message


def test_a_flow_built_in_code_is_resolved_like_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Var files, env references and provider configs of a code-built flow are checked at their key paths."""
    monkeypatch.delenv("RTFLOW_TEST_UNSET", raising=False)
    base = {"prompts": ["{{ q }}"], "tests": [{"vars": {"q": "hi"}}]}
    cases = {
        "providers.0.config.api_key: environment variable `RTFLOW_TEST_UNSET` is not set": {
            "providers": [{"id": "openai:chat:gpt-4.1-mini", "config": {"api_key": "{{ env.RTFLOW_TEST_UNSET }}"}}]
        },
        "providers.0.config.temperatur: unknown key 'temperatur'; did you mean `temperature`?": {
            "providers": [{"id": "openai:chat:gpt-4.1-mini", "config": {"temperatur": 0.2}}]
        },
        "tests.0.vars.q: var file not found: file://missing.txt": {
            "providers": ["openai:chat:gpt-4.1-mini"],
            "tests": [{"vars": {"q": "file://missing.txt"}}],
        },
    }
    for expected, sections in cases.items():
        flow = FlowSpec.model_validate({**base, **sections})
        flow.set_base_dir(tmp_path)
        with pytest.raises(FlowLoadError) as caught:
            rtflow.compile(flow)
        assert str(caught.value).startswith(f"<FlowSpec built in code>: {expected}"), str(caught.value)


def test_each_check_runs_once_per_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`load` resolves; `compile` of a loaded flow does not resolve again (each provider is built once)."""
    from rtflow.providers import registry

    built: list[str] = []
    original = registry.create_provider

    def counting(info):  # type: ignore[no-untyped-def]
        built.append(info.id)
        return original(info)

    monkeypatch.setattr(registry, "create_provider", counting)
    flow = rtflow.load(
        _write(tmp_path, "providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ q }}']\ntests: [{vars: {q: hi}}]\n")
    )
    assert flow.resolved and built == ["openai:chat:gpt-4.1-mini"]
    rtflow.compile(flow)
    rtflow.compile(flow)
    assert resolve(flow) is flow
    assert built == ["openai:chat:gpt-4.1-mini"]


def test_validate_refuses_what_the_run_would_fail_on(tmp_path: Path) -> None:
    """`rtflow validate` goes through the same path: a missing prompt function exits 2 with file:line."""
    from click.testing import CliRunner

    from rtflow.cli import main

    (tmp_path / "p.py").write_text("def build(context):\n    return 'hi'\n")
    flow = _write(tmp_path, "providers: [openai:chat:gpt-4.1-mini]\nprompts: [file://p.py:nosuch]\ntests: [{}]\n")
    result = CliRunner().invoke(main, ["validate", str(flow)])
    assert result.exit_code == 2
    assert f"{flow}:2:" in result.output and "has no function 'nosuch'" in result.output


def test_one_duration_rule_wherever_a_duration_is_written() -> None:
    """Execution timeouts and provider timeouts share one parser: `71ms` and `71` agree, negatives are refused."""
    from rtflow.durations import parse_duration
    from rtflow.providers.openai_chat import ChatConfig
    from rtflow.providers.realtime_events import RealtimeConfig

    assert parse_duration("71ms") == parse_duration(71) == 0.071
    assert ChatConfig.model_validate({"request_timeout": "71ms"}).request_timeout == 0.071
    assert RealtimeConfig.model_validate({"websocket_timeout": 71}).websocket_timeout == 0.071
    assert RealtimeConfig.model_validate({"tool_timeout": "2s"}).tool_timeout == 2.0
    for invalid in (-5, "-5", "soon"):
        with pytest.raises(ValueError, match="duration"):
            ChatConfig.model_validate({"request_timeout": invalid})
        with pytest.raises(ValueError, match="duration"):
            FlowSpec.model_validate(
                {"providers": ["openai:chat:m"], "prompts": ["x"], "tests": [{}], "execution": {"timeout": invalid}}
            )
