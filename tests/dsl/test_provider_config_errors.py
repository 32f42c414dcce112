"""A provider's own config keys are checked at load time and pointed at by file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtflow.errors import FlowLoadError
from rtflow.flow.loader import load


@pytest.mark.parametrize(
    ("config_line", "line", "expected"),
    [
        ("config: {websocketTimout: 60000}", 4, "unknown key 'websocket_timout'; did you mean `websocket_timeout`?"),
        ("config: {max_tool_iterations: lots}", 4, "config.max_tool_iterations: Input should be a valid integer"),
        ("config:\n      voice: alloy\n      dialekt: beta", 6, "unknown key 'dialekt'; did you mean `dialect`?"),
    ],
)
def test_bad_provider_config_names_file_line_and_key(
    tmp_path: Path, config_line: str, line: int, expected: str
) -> None:
    """Unknown or ill-typed provider config keys fail loading with the line of the key and a suggestion."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "providers:\n  - id: openai:realtime:gpt-realtime\n    label: rt\n"
        f"    {config_line}\n"
        "prompts: ['{{ q }}']\ntests: [{vars: {q: hi}}]\n"
    )
    with pytest.raises(FlowLoadError) as caught:
        load(flow)
    message = str(caught.value)
    assert f"{flow}:{line}:" in message
    assert expected in message
    assert "providers.0.config" in message
    assert message.count("max_tool_iterations") <= 1  # the place names the key; the reason need not again


def test_secret_values_in_bad_config_are_not_echoed(tmp_path: Path) -> None:
    """A wrongly typed `api_key` is reported by name only."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "providers:\n  - id: openai:chat:gpt-4.1-mini\n    config: {api_key: [sk-do-not-print-me-123456]}\n"
        "prompts: ['{{ q }}']\ntests: [{vars: {q: hi}}]\n"
    )
    with pytest.raises(FlowLoadError) as caught:
        load(flow)
    assert "api_key" in str(caught.value)
    assert "sk-do-not-print-me" not in str(caught.value)


def test_provider_warnings_join_the_flow_warnings(tmp_path: Path) -> None:
    """A config a provider accepts but cannot honour loads, and the provider's warning is in `flow.warnings`."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "providers:\n  - id: openai:realtime:gpt-realtime\n    label: rt\n    config: {temperature: 0.5}\n"
        "prompts: ['{{ q }}']\ntests: [{vars: {q: hi}}]\n"
    )
    warnings = load(flow).warnings
    assert len(warnings) == 1
    assert "provider 'rt': temperature is not supported by the GA Realtime API" in warnings[0]


def test_an_unknown_key_lists_each_known_key_once_in_the_writers_style() -> None:
    from rtflow.errors import did_you_mean

    known = ["apiKeyEnv", "api_key_env", "api_key_env", "toolTimeout", "tool_timeout", "rpm"]
    assert did_you_mean("zzzzzz", known) == "expected one of: `api_key_env`, `rpm`, `tool_timeout`"
    assert did_you_mean("zzzZzz", known) == "expected one of: `apiKeyEnv`, `rpm`, `toolTimeout`"
    assert did_you_mean("toolTimout", known) == "did you mean `toolTimeout`?"
