"""`load_js_config`: a promptfoo suite written as JavaScript or TypeScript (`promptfooconfig.js`), as a dict.

Configs load before any run starts, from sync code, so this uses a short-lived worker of its own rather than
a `JsBridge`: one request in, one answer out, and the process is gone. Functions in the config come back as
`JsFunctionRef`s; a run's bridge calls them (`JsBridge.call_ref`), loading the config again in its own worker,
which is why a config that is a function may be called more than once.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from rtflow.js.errors import JsError, JsTimeoutError, JsUnavailableError, JsWorkerError
from rtflow.js.node import find_node
from rtflow.js.protocol import answer_value, encode_request, log_output, worker_command
from rtflow.js.refs import attach_function_refs

__all__ = ["load_js_config"]


def load_js_config(file: Path, *, timeout: float = 30) -> dict[str, Any]:
    """The suite `file` exports: its `module.exports` or default export, awaited when it is a promise, called
    (and awaited) when it is a function. Functions inside it become `JsFunctionRef`s.

    Raises JsError (file and line) when the module fails, JsTimeoutError when it takes longer than `timeout`
    seconds, JsUnavailableError when there is no Node to run it.
    """
    path = Path(os.path.abspath(file))
    node = find_node(path)
    try:
        completed = subprocess.run(
            worker_command(node),
            input=encode_request({"id": 1, "op": "load_config", "file": str(path)}),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        _forward(exc.stderr)
        raise JsTimeoutError(f"did not finish loading within {timeout:g} s", file=path, timeout=timeout) from None
    except OSError as exc:
        raise JsUnavailableError(f"Node.js could not be started ({node.describe()}): {exc}", file=path) from exc
    _forward(completed.stderr)
    answer = _answer(completed.stdout)
    if answer is None:
        tail = completed.stderr.decode(errors="replace").strip().splitlines()[-1:]
        said = f"; its last output: {tail[0][:300]}" if tail else ""
        raise JsWorkerError(
            f"the JavaScript worker exited with code {completed.returncode} before the config was loaded"
            f" (process.exit() in the config, or a crash){said}",
            file=path,
            worker_exit_code=completed.returncode,
        )
    config = attach_function_refs(answer_value(answer, path), path)
    if not isinstance(config, dict):  # worker.js checks this too; a dict is what the caller is promised
        raise JsError("the config is not an object", file=path, kind="result")
    return config


def _answer(stdout: bytes) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and answer.get("id") == 1:
            return answer
    return None


def _forward(stderr: bytes | None) -> None:
    for line in (stderr or b"").decode(errors="replace").splitlines():
        log_output(line, pid=None)
