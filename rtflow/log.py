"""Structured logs: structlog events bound to run, conversation, turn, provider and attempt.

Event names are stable so that tools and tests can rely on them: `run.started`, `node.started`,
`attempt.failed`, `fallback.used`, `node.finished`, `grade.finished`, `run.interrupted`, `run.finished`.
Context is bound through contextvars, so every event inside a node carries that node's identity.

rtflow logs through a pipeline of its own and never calls `structlog.configure`: the process-wide settings
belong to the application that embeds rtflow. `configure_logging()` (the CLI calls it) renders for people on a
TTY and JSON lines otherwise (or when asked); by default only warnings and errors reach stderr. A redaction
processor removes secrets (API keys from the environment and from flow configs, and anything shaped like an
OpenAI key) from every value before it is rendered.

While a live display (the CLI's progress bar) is drawn on the terminal rtflow logs to, `printing_above` hands
each rendered line to that display, which prints it above itself: a line written straight to the terminal would
land in the middle of the bar. Only rtflow's own lines move, and only while the display is up; the host's
logging is never touched.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal, TextIO

from rtflow.terminal import terminal_safe

__all__ = [
    "CollectedEvent",
    "LogFormat",
    "capture_events",
    "collect_events",
    "configure_logging",
    "current_level",
    "get_logger",
    "log_collected",
    "printing_above",
    "redact",
    "register_secret",
]

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


def _terminal_safe_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = terminal_safe(value)
    return event_dict


def _redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


@dataclass(frozen=True)
class _LiveDisplay:
    """A display redrawn in place on `stream`, and how to print a line above it."""

    stream: IO[str]
    print_line: Callable[[str], None]


_live_display: _LiveDisplay | None = None


def _same_terminal(first: IO[str], second: IO[str]) -> bool:
    """Whether two streams write to one terminal (`sys.stderr` and a copy of it taken earlier, say)."""
    if first is second:
        return True
    try:
        return first.isatty() and second.isatty() and first.fileno() == second.fileno()
    except (AttributeError, OSError, ValueError):  # a stream with no descriptor, or a closed one
        return False


class _LinePrinter:
    """The end of rtflow's pipeline: prints each rendered event on its stream as one line, or, while a live
    display is drawn on that stream, has the display print it above itself."""

    def __init__(self, stream: TextIO) -> None:
        import structlog

        self._stream = stream
        self._printer = structlog.PrintLogger(stream)

    def msg(self, line: str) -> None:
        display = _live_display
        if display is not None and _same_terminal(display.stream, self._stream):
            display.print_line(line)
        else:
            self._printer.msg(line)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


@contextmanager
def printing_above(stream: IO[str], print_line: Callable[[str], None]) -> Iterator[None]:
    """Inside the block, rtflow's log lines bound for the terminal `stream` go to `print_line` instead.

    For a live display redrawn in place on that terminal (a progress bar): `print_line` prints the line above the
    display, so the line stands whole and the display stays below it. Lines bound elsewhere (a log file) are
    untouched, and so is every logger that is not rtflow's.
    """
    global _live_display
    saved = _live_display
    _live_display = _LiveDisplay(stream, print_line)
    try:
        yield
    finally:
        _live_display = saved


@dataclass
class _Pipeline:
    """rtflow's own logging set-up; structlog's process-wide configuration belongs to the host application."""

    processors: list[Any]
    level: int
    printer: Any


def _pipeline(log_format: LogFormat | None, level: str, stream: TextIO | None) -> _Pipeline:
    import structlog  # imported when something is logged or configured: loading a flow never pays for it

    out = stream if stream is not None else sys.stderr
    if log_format is None:
        log_format = "console" if out.isatty() else "json"
    finish: list[Any]
    if log_format == "console":
        # JSON escapes control characters itself; a console line would print them, and they steer terminals.
        finish = [_terminal_safe_processor, structlog.dev.ConsoleRenderer(colors=out.isatty())]
    else:
        finish = [structlog.processors.JSONRenderer()]
    return _Pipeline(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            *finish,
        ],
        level=logging.getLevelNamesMapping()[level.upper()],
        # One printer for every bound logger: building one per `bind` costs more than a filtered-out call.
        printer=_LinePrinter(out),
    )


_current: _Pipeline | None = None  # None: warnings and errors to stderr, until the CLI or the host says otherwise


def configure_logging(
    *,
    log_format: LogFormat | None = None,
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Set how rtflow logs in this process. `log_format` None picks console on a TTY, else JSON lines.

    Only rtflow's own loggers are affected: structlog's global configuration, which belongs to the application
    that embeds rtflow, is never touched. The CLI calls this; a library user may, or leave the default
    (warnings and errors on stderr).
    """
    global _current
    _current = _pipeline(log_format, level, stream)


@contextmanager
def capture_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every event rtflow logs inside the block, as the dict it was logged with (before redaction, unrendered).

    For tests that must prove a secret never reaches a log call at all, not merely that it is redacted.
    """
    global _current
    captured: list[MutableMapping[str, Any]] = []
    saved = _current
    _current = _keeping(lambda method, event_dict: captured.append({**event_dict, "log_level": method}), logging.DEBUG)
    try:
        yield captured
    finally:
        _current = saved


def _keeping(keep: Callable[[str, MutableMapping[str, Any]], None], level: int, *before: Any) -> _Pipeline:
    """A pipeline that hands each event at `level` and above to `keep` (after the context and `before`'s
    processors) instead of printing it."""
    import structlog

    def kept(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        keep(method, event_dict)
        raise structlog.DropEvent

    return _Pipeline(processors=[structlog.contextvars.merge_contextvars, *before, kept], level=level, printer=None)


CollectedEvent = tuple[str, dict[str, Any]]
"""An event kept by `collect_events`: (the method it was logged with, its fields, `event` among them)."""


def collect_events(level: int) -> list[CollectedEvent]:
    """From now on, rtflow's events at `level` and above are kept, redacted and unrendered, in the returned list
    instead of printed: for a process whose events another one prints (a Ray worker's, which the driver logs
    under the worker's name). Whoever reads the list empties it as it hands the events on."""
    import structlog

    global _current
    kept: list[CollectedEvent] = []

    def keep(method: str, event_dict: MutableMapping[str, Any]) -> None:
        event_dict.pop("logger_name", None)  # the process that logs the event names its own
        kept.append((method, dict(event_dict)))

    # `logged_at`: when it happened here; the process that prints it stamps it again when it does.
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="logged_at")
    _current = _keeping(keep, level, stamp, _redact_processor)
    return kept


def log_collected(events: Iterable[CollectedEvent], **extra: Any) -> None:
    """Log events another process collected (`collect_events`) here, each as it was logged, with `extra` fields
    (a Ray worker's, with `worker=` its name)."""
    logger = get_logger()
    for method, fields in events:
        fields = dict(fields)
        event = fields.pop("event", "event")
        getattr(logger, method, logger.warning)(event, **fields, **extra)


def current_level() -> int:
    """The level rtflow logs at in this process (as `logging` numbers it)."""
    return (_current if _current is not None else _default_pipeline()).level


def get_logger() -> Any:
    """The rtflow logger, on rtflow's own pipeline; events are bound to whatever context the caller bound."""
    import structlog

    pipeline = _current if _current is not None else _default_pipeline()
    return structlog.wrap_logger(
        pipeline.printer,
        processors=pipeline.processors,
        wrapper_class=structlog.make_filtering_bound_logger(pipeline.level),
        logger_name="rtflow",
    )


def _default_pipeline() -> _Pipeline:
    global _current
    _current = _pipeline(None, "warning", None)
    return _current
