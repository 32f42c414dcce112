"""Structured logs: structlog events bound to run, conversation, turn, provider and attempt.

Event names are stable so that tools and tests can rely on them: `run.started`, `node.started`,
`attempt.failed`, `fallback.used`, `node.finished`, `grade.finished`, `run.interrupted`, `run.finished`.
Context is bound through contextvars, so every event inside a node carries that node's identity.

`configure_logging()` renders for people on a TTY and JSON lines otherwise (or when asked); a redaction
processor removes secrets (API keys from the environment and from flow configs, and anything shaped like an
OpenAI key) from every value before it is rendered.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["LogFormat", "configure_logging", "get_logger", "redact", "register_secret"]

LogFormat = Literal["console", "json"]

_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|sess_[A-Za-z0-9]{8,})")
_REDACTED = "[redacted]"
_secrets: set[str] = set()
_SECRET_ENV_NAMES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")


def register_secret(value: str | None) -> None:
    """Never log `value` (an API key given in a flow's config or a custom env var)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def _known_secrets() -> Iterable[str]:
    for name in _SECRET_ENV_NAMES:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            yield value
    yield from _secrets


def redact(text: str) -> str:
    """`text` with every known secret and every key-shaped string replaced."""
    for secret in _known_secrets():
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return _KEY_PATTERN.sub(_REDACTED, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


def configure_logging(
    *,
    log_format: LogFormat | None = None,
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Set up structlog for this process. `log_format` None picks console on a TTY, else JSON lines."""
    out = stream if stream is not None else sys.stderr
    if log_format is None:
        log_format = "console" if out.isatty() else "json"
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    printer = structlog.PrintLogger(out)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One PrintLogger for every bound logger: the stock factory builds a new one per `bind`, which costs more
        # than the log call itself when logging is filtered out.
        logger_factory=lambda *_args: printer,
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    """The rtflow logger; events are bound to whatever context the caller bound."""
    return structlog.get_logger("rtflow")
