"""Provider config validation, endpoint resolution and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtflow.errors import AuthenticationError, CompileError, FlowError
from rtflow.providers import registry
from rtflow.providers.base import Provider, ProviderInfo, ProviderSession
from rtflow.providers.endpoints import realtime_url, resolve_base_url, resolve_key
from rtflow.providers.openai_chat import ChatProvider
from rtflow.providers.openai_realtime import RealtimeProvider


def _info(provider_id: str, **config: object) -> ProviderInfo:
    return ProviderInfo(id=provider_id, label="primary", config=config)


def test_unknown_key_names_provider_and_suggests_the_closest() -> None:
    """A misspelt key is a FlowError naming the provider label, the key, and the key it probably meant."""
    with pytest.raises(FlowError) as caught:
        RealtimeProvider(_info("openai:realtime:gpt-realtime", instructionz="hi"))
    message = str(caught.value)
    assert "'primary'" in message and "'instructionz'" in message and "did you mean `instructions`" in message


def test_bad_value_names_the_key_without_echoing_the_value() -> None:
    """A wrong value names its key; the value itself (possibly a secret) is not repeated."""
    with pytest.raises(FlowError) as caught:
        ChatProvider(_info("openai:chat:gpt-4.1", max_tool_iterations="sk-looks-secret"))
    assert "max_tool_iterations" in str(caught.value) and "sk-looks-secret" not in str(caught.value)


def test_camel_case_aliases_and_durations_are_accepted() -> None:
    """promptfoo's camelCase keys work, and durations accept 30s / 500ms / milliseconds."""
    provider = RealtimeProvider(
        _info(
            "openai:realtime:gpt-realtime",
            apiBaseUrl="http://127.0.0.1:1/v1",
            websocketTimeout=1500,
            maxResponseOutputTokens=200,
            maxConcurrency=3,
            toolTimeout="500ms",
        )
    )
    assert provider.config.websocket_timeout == 1.5 and provider.config.max_output_tokens == 200
    assert provider.config.tool_timeout == 0.5 and provider.max_concurrency == 3
    assert provider.url == "ws://127.0.0.1:1/v1/realtime?model=gpt-realtime"
    for spelling in ("apiKeyEnvar", "api_key_envar", "apiKeyEnv"):  # promptfoo's name, as written and snake-cased
        assert ChatProvider(_info("openai:chat:gpt-4.1", **{spelling: "MY_KEY"})).config.api_key_env == "MY_KEY"


def test_bad_handler_reference_is_a_flow_error(tmp_path: Path) -> None:
    """A function handler that does not exist fails when the provider is built, naming the reference."""
    (tmp_path / "tools.py").write_text("def real(args):\n    return 1\n")
    info = ProviderInfo(
        id="openai:chat:gpt-4.1",
        label="chat",
        config={"function_handlers": {"x": "file://tools.py:missing"}},
        base_dir=tmp_path,
    )
    with pytest.raises(FlowError, match="missing"):
        ChatProvider(info)


def test_ga_temperature_gives_one_warning_beta_none() -> None:
    """GA warns that temperature is not sent; beta sends it and does not warn."""
    ga = RealtimeProvider(_info("openai:realtime:gpt-realtime", temperature=0.5))
    beta = RealtimeProvider(_info("openai:realtime:gpt-realtime", temperature=0.5, dialect="beta"))
    assert len(ga.warnings()) == 1 and "temperature" in ga.warnings()[0]
    assert beta.warnings() == []


@pytest.mark.parametrize(
    ("base", "kwargs", "expected"),
    [
        ("https://api.openai.com/v1", {}, "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:8765/v1/", {}, "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime"),
        ("https://gw.example/v1?tenant=7", {}, "wss://gw.example/v1/realtime?tenant=7&model=gpt-realtime"),
        (
            "https://res.openai.azure.com/openai/v1",
            {"azure": True, "deployment": "rt-prod"},
            "wss://res.openai.azure.com/openai/v1/realtime?model=rt-prod",
        ),
        (
            "https://res.openai.azure.com",
            {"azure": True, "api_version": "2025-04-01-preview", "deployment": "rt-prod"},
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt-prod",
        ),
    ],
)
def test_realtime_url_forms(base: str, kwargs: dict[str, object], expected: str) -> None:
    """http -> ws, https -> wss, queries kept, and both Azure URL forms."""
    assert realtime_url(base, "gpt-realtime", **kwargs) == expected  # type: ignore[arg-type]


def test_base_url_and_key_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config wins over OPENAI_BASE_URL; api_key wins over api_key_env, which wins over OPENAI_API_KEY."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-host/v1")
    assert resolve_base_url(None) == "http://env-host/v1"
    assert resolve_base_url("http://cfg/v1/") == "http://cfg/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "from-default")
    monkeypatch.setenv("MY_KEY", "from-named")
    assert resolve_key(None, "MY_KEY", "p").value == "from-named"
    assert resolve_key("inline", "MY_KEY", "p").value == "inline"
    assert resolve_key(None, None, "p").source == "$OPENAI_API_KEY"
    assert "from-default" not in repr(resolve_key(None, None, "p"))


def test_missing_key_names_the_variable() -> None:
    """With no key anywhere, the error names the environment variable to set."""
    with pytest.raises(AuthenticationError, match="MY_MISSING_KEY") as caught:
        resolve_key(None, "MY_MISSING_KEY", "realtime")
    assert caught.value.retryable is False


def test_azure_uses_api_key_header() -> None:
    """An Azure host authenticates with `api-key`, not a bearer token; beta adds the OpenAI-Beta header."""
    provider = RealtimeProvider(
        _info("openai:realtime:gpt-realtime", api_base_url="https://res.openai.azure.com/openai/v1", dialect="beta")
    )
    key = resolve_key("azure-secret", None, "p")
    headers = provider.connect_headers(key)
    assert headers["api-key"] == "azure-secret" and "Authorization" not in headers
    assert headers["OpenAI-Beta"] == "realtime=v1"


def test_registry_builds_builtins_and_rejects_unknown_kinds() -> None:
    """Built-in kinds are known and built by prefix; an unknown kind is a CompileError with a suggestion."""
    assert {"openai:chat", "openai:realtime"} <= set(registry.known_kinds())
    assert isinstance(registry.create_provider(_info("openai:realtime:gpt-realtime")), RealtimeProvider)
    assert isinstance(registry.create_provider(_info("openai:chat:gpt-4.1-mini")), ChatProvider)
    with pytest.raises(CompileError, match="did you mean `openai:chat`"):
        registry.create_provider(_info("openai:chatt:gpt-4.1"))


class _EchoProvider(Provider):
    kind = "test:echo"

    def session(self, conversation_id: str) -> ProviderSession:
        raise NotImplementedError("never opened in this test")


def test_register_adds_a_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered factory serves its prefix."""
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    registry.register("test:echo", _EchoProvider)
    provider = registry.create_provider(_info("test:echo:model-a"))
    assert isinstance(provider, _EchoProvider) and provider.info.model == "model-a"
    assert "test:echo" in registry.known_kinds()
    with pytest.raises(ValueError):
        registry.register("no-colon", _EchoProvider)


def test_entry_point_group_is_loaded_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider class advertised in the `rtflow.providers` entry-point group is found by its prefix."""
    (tmp_path / "rtflow_echo_plugin.py").write_text(
        "from rtflow.providers.base import Provider\n"
        "class Echo(Provider):\n"
        "    kind = 'plug:echo'\n"
        "    def session(self, conversation_id):\n"
        "        raise NotImplementedError\n"
    )
    dist = tmp_path / "rtflow_echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rtflow-echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rtflow.providers]\nplug:echo = rtflow_echo_plugin:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    provider = registry.create_provider(_info("plug:echo:m"))
    assert type(provider).__name__ == "Echo" and provider.info.model == "m"
    assert "plug:echo" in registry.known_kinds()
