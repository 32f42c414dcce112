"""The Python half of worker.js's JSON-lines protocol: requests out, answers in, and the worker's stderr.

worker.js's header documents the messages. Both the long-lived bridge and the one-shot config loader speak
through here, so an answer means the same thing to each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rtflow.js.errors import JsError, JsErrorKind
from rtflow.js.node import NodeRuntime
from rtflow.log import get_logger

__all__ = ["WORKER_SCRIPT", "answer_value", "encode_request", "log_output", "worker_command"]

WORKER_SCRIPT = Path(__file__).with_name("worker.js")

_KINDS: frozenset[str] = frozenset({"load", "export", "threw", "result", "timeout", "worker", "protocol"})


def worker_command(node: NodeRuntime) -> list[str]:
    """The command line that starts a worker on `node`."""
    return [str(node.executable), *node.flags, str(WORKER_SCRIPT)]


# Built once: json.dumps given options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))


def encode_request(request: dict[str, Any]) -> bytes:
    """One request line. Values JSON has no form for (a date from YAML vars) travel as their `str`."""
    return _ENCODER.encode(request).encode() + b"\n"


def answer_value(answer: dict[str, Any], file: Path) -> Any:
    """The value an answer carries, or its failure raised as a JsError (`file` when the answer names none)."""
    if answer.get("ok"):
        return answer.get("value")
    error = answer.get("error")
    if not isinstance(error, dict):
        raise JsError(f"the worker sent an answer rtflow cannot read: {answer!r:.200}", file=file, kind="protocol")
    raise error_from_answer(error, file)


def error_from_answer(error: dict[str, Any], file: Path) -> JsError:
    where = error.get("file")
    line = error.get("line")
    kind = error.get("kind")
    name = error.get("name")
    stack = error.get("stack")
    checked_kind: JsErrorKind = kind if kind in _KINDS else "threw"
    return JsError(
        str(error.get("message", "failed")),
        file=Path(where) if isinstance(where, str) else file,
        line=line if isinstance(line, int) else None,
        kind=checked_kind,
        name=name if isinstance(name, str) else None,
        stack=stack if isinstance(stack, str) else None,
    )


def log_output(line: str, *, pid: int | None) -> None:
    """One line the worker wrote to stderr: what user code printed, or Node's own warnings.

    Info level: a run shows it with `-v`, as console output of prompt functions is for whoever debugs them.
    """
    get_logger().info("js.output", line=line, node_pid=pid)
