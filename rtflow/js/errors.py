"""The errors of the JavaScript bridge.

```
RtflowError
├── FlowError                       exit_code 2
│   └── JsUnavailableError          no Node.js to run a file with, or one too old for TypeScript
└── JsError                         user JavaScript failed; knows file, line, kind, the JS error's name
    ├── JsTimeoutError              a call ran past its timeout; the worker was stopped
    └── JsWorkerError               the worker died (process.exit, out of memory) or was stopped under a call
```

They subclass rtflow's own bases, so the CLI maps them to exit codes as it does every rtflow error; they live
here until they join `rtflow.errors` beside the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rtflow.errors import FlowError, RtflowError

__all__ = ["JsError", "JsErrorKind", "JsTimeoutError", "JsUnavailableError", "JsWorkerError", "display_path"]

JsErrorKind = Literal["load", "export", "threw", "result", "timeout", "worker", "protocol"]
"""Which step failed: loading the module (a syntax error, a throw at import time, no such file), finding the
export, the function itself (it threw or rejected), its result (not JSON), or the worker around it."""


def display_path(file: Path | str) -> str:
    """`file` as a person reads it in a message: relative to the working folder when it lies inside it."""
    path = Path(file)
    try:
        return str(path.relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except (ValueError, OSError):  # outside the working folder, or that folder was removed
        return str(path)


class JsUnavailableError(FlowError):
    """A file needs JavaScript (or TypeScript) and no suitable Node.js was found. `file` names that file."""

    def __init__(self, message: str, *, file: Path | None = None) -> None:
        super().__init__(message)
        self.file = file


class JsError(RtflowError):
    """User JavaScript failed: "prompt.js:12: TypeError: Cannot read properties of undefined (reading 'x')".

    `file` is the file the failure points at (the first stack frame inside the file that was called, else
    the first user frame, else the called file); `line` is its line when known. `name` is the JavaScript
    error's name (`TypeError`), `stack` its stack as Node printed it, `kind` which step failed.
    `reason` is the message without the location prefix.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Path | None,
        line: int | None = None,
        kind: JsErrorKind = "threw",
        name: str | None = None,
        stack: str | None = None,
    ) -> None:
        where = "<javascript>" if file is None else display_path(file)
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {f'{name}: ' if name else ''}{reason}")
        self.reason = reason
        self.file = file
        self.line = line
        self.kind: JsErrorKind = kind
        self.name = name
        self.stack = stack


class JsTimeoutError(JsError):
    """A call did not return within its timeout. The worker running it was killed; the next call starts one."""

    def __init__(self, reason: str, *, file: Path | None, timeout: float) -> None:
        super().__init__(reason, file=file, kind="timeout")
        self.timeout = timeout


class JsWorkerError(JsError):
    """The worker stopped while the call was in flight: user code exited or crashed it, or another call's
    timeout had it killed. The next call starts a fresh worker. `worker_exit_code` is the process's exit code
    when it exited by itself (`exit_code`, as on every rtflow error, is what the CLI exits with)."""

    def __init__(self, reason: str, *, file: Path | None, worker_exit_code: int | None = None) -> None:
        super().__init__(reason, file=file, kind="worker")
        self.worker_exit_code = worker_exit_code
