"""Provider config validation shared by every built-in provider.

A provider's `config` block is validated by a pydantic model with snake_case field names and promptfoo's
camelCase spellings as aliases. Validation errors become one `FlowError` that names the provider's label, the
key at fault and, for an unknown key, the closest known spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from rtflow.durations import Duration
from rtflow.errors import ProviderConfigError, did_you_mean
from rtflow.providers.ratelimits import DEFAULT_MAX_RETRY_AFTER

__all__ = ["CommonConfig", "validate_config"]

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class CommonConfig(BaseModel):
    """Keys every OpenAI provider accepts."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)

    api_base_url: str | None = Field(default=None, alias="apiBaseUrl")
    """Base URL of the API (`https://api.openai.com/v1`); defaults to `OPENAI_BASE_URL`, then the public API."""
    api_host: str | None = None
    """promptfoo's host-only form of the base URL (`api.example.com`); https is assumed."""
    api_key: str | None = None
    """The API key itself. Discouraged: prefer `api_key_env` or `OPENAI_API_KEY`."""
    api_key_env: str | None = Field(
        default=None, validation_alias=AliasChoices("api_key_env", "apiKeyEnv", "apiKeyEnvar", "api_key_envar")
    )
    """Name of the environment variable holding the key (default `OPENAI_API_KEY`)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers sent on every request or handshake."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """The most calls (chat) or open sessions (realtime) at once for this endpoint and model."""
    rpm: float | None = Field(default=None, gt=0)
    """Requests per minute allowed (used by the scheduler's rate limiter)."""
    tpm: float | None = Field(default=None, gt=0)
    """Tokens per minute allowed (used by the scheduler's rate limiter)."""
    concurrency_key: str | None = None
    """Override of the key under which calls share limits (default: endpoint and model)."""
    function_handlers: dict[str, str] = Field(default_factory=dict)
    """Tool name -> `file://tools.py:func`, the Python function that answers that tool."""
    function_call_handler: str | None = None
    """promptfoo's single dispatcher `file://tools.py:handle`, called with (name, arguments_json)."""
    tool_timeout: Duration = Field(
        default=30.0,
        validation_alias=AliasChoices("tool_timeout", "toolTimeout", "toolCallTimeout", "tool_call_timeout"),
    )
    """How long a tool handler may run before its call counts as failed (a duration: `5s`, `500ms`, milliseconds)."""
    max_retry_after: Duration = DEFAULT_MAX_RETRY_AFTER
    """The longest wait a server may ask for (`Retry-After`, "try again in", a rate-limit reset): a longer one is
    cut to this, and the error (or the turn's protocol warnings) says so. A duration (`90s`, `2m`)."""
    max_tool_iterations: int = Field(default=8, ge=0)
    """The most tool rounds in one turn before the turn fails with ToolError (0: any tool call fails it)."""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    """JSON-schema function tools, native (`{type, name, parameters}`) or chat-style (`{type, function}`)."""
    tool_choice: str | dict[str, Any] | None = None
    """`auto`, `none`, `required`, or a specific function."""
    temperature: float | None = None
    """Sampling temperature."""


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        keys.append(name)
        if field.alias and field.alias != name:
            keys.append(field.alias)
        if isinstance(field.validation_alias, AliasChoices):
            keys.extend(str(choice) for choice in field.validation_alias.choices if choice != name)
    return keys


def validate_config(model: type[ConfigT], config: Mapping[str, Any], provider_label: str) -> ConfigT:
    """`config` validated as `model`, or a FlowError naming the provider and every bad key."""
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        known = _known_keys(model)
        problems: list[tuple[str, str]] = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "<config>"
            if error["type"] == "extra_forbidden":
                top = str(error["loc"][0])
                problems.append((key, f"unknown key {key!r}; {did_you_mean(top, known)}"))
            else:
                # Never echo the input value: it may be a secret (api_key).
                problems.append((key, error["msg"]))
        message = f"provider {provider_label!r}: config " + "; ".join(
            reason if reason.startswith("unknown key") else f"{key!r}: {reason}" for key, reason in problems
        )
        raise ProviderConfigError(message, provider=provider_label, problems=problems) from None
