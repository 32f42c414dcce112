"""`JsBridge`: the user's JavaScript, called from async Python through one long-lived Node worker.

```python
async with JsBridge() as js:
    text = await js.call(Path("prompt.js"), None, [{"vars": vars, "provider": provider}], timeout=30)
    output = await js.call_ref(ref, [name, arguments_json], timeout=10)
    passed = await js.evaluate("output.length > 5", {"output": text}, file=flow, line=42, timeout=10)
```

The worker (worker.js) starts on the first call and stops when the `async with` block ends, cancelled or
not: no Node process outlives the bridge. One process, JSON lines, any number of calls in flight; a call costs
a line each way, not a process.

Inline code (`evaluate`) that loops without end is stopped by the worker itself a little before its timeout, and
fails alone. Any other call that runs past its timeout has its worker killed (JavaScript cannot be interrupted
from outside), which fails every other call in flight on that worker with a `JsWorkerError` saying why; a
worker that exits or crashes fails its calls the same way. Either way the next call starts a fresh worker:
every request names its file (and a config's function by key path), so nothing is lost with the old process
but its module cache.

A TypeScript file goes to a Node that can strip types (see `node.find_node`); that is nearly always the one
Node the bridge uses, but a system Node too old for TypeScript beside the wheel's means a second worker.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import Process, TaskGroup

from rtflow.js.errors import JsTimeoutError, JsUnavailableError, JsWorkerError, display_path
from rtflow.js.node import NodeRuntime, find_node, is_typescript, typescript_unsupported
from rtflow.js.protocol import answer_value, encode_request, log_output, worker_command
from rtflow.js.refs import JsFunctionRef
from rtflow.log import get_logger

__all__ = ["JsBridge"]

_STDERR_TAIL_LINES = 8
_EXIT_GRACE_S = 0.5
"""How long a worker may take to exit by itself once its stdin is closed, before it is killed."""


class _Call:
    """One request in flight: the file it runs (for messages) and, once it is settled, its answer or error."""

    __slots__ = ("answer", "done", "error", "file")

    def __init__(self, file: Path) -> None:
        self.file = file
        self.done = anyio.Event()
        self.answer: dict[str, Any] | None = None
        self.error: Exception | None = None


class _Worker:
    """One Node process and the calls in flight on it. Dead for good once `alive` is False."""

    def __init__(self, process: Process, node: NodeRuntime) -> None:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        self.process = process
        self._stdin = process.stdin
        self.node = node
        self.alive = True
        self._calls: dict[int, _Call] = {}
        self._next_id = 0
        self._stop_reason: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._stderr_done = anyio.Event()

    @classmethod
    async def start(cls, node: NodeRuntime, task_group: TaskGroup) -> _Worker:
        started = time.perf_counter()
        try:
            process = await anyio.open_process(worker_command(node))
        except OSError as exc:
            raise JsUnavailableError(f"Node.js could not be started ({node.describe()}): {exc}") from exc
        worker = cls(process, node)
        task_group.start_soon(worker._read_answers)
        task_group.start_soon(worker._forward_stderr)
        get_logger().debug(
            "js.worker.started",
            node_pid=process.pid,
            node=node.describe(),
            spawn_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return worker

    async def request(self, request: dict[str, Any], file: Path, timeout: float) -> Any:
        """Send one request and wait for its answer; the answer's value, or its failure raised."""
        if not self.alive:  # the caller raced a worker's death; the bridge starts a new one next time
            raise JsWorkerError(self._stop_reason or "the JavaScript worker had stopped", file=file)
        self._next_id += 1
        call_id = self._next_id
        call = _Call(file)
        self._calls[call_id] = call
        try:
            with anyio.fail_after(timeout):
                # When the worker is gone the send fails; the answer reader then fails the call, saying why.
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await self._stdin.send(encode_request({"id": call_id, **request}))
                await call.done.wait()
        except TimeoutError:
            if not call.done.is_set():
                shown = display_path(file)
                self.stop(f"the JavaScript worker was restarted because {shown} did not return within {timeout:g} s")
                raise JsTimeoutError(
                    f"did not return within {timeout:g} s; the JavaScript worker running it was stopped,"
                    " and the next call starts a fresh one",
                    file=file,
                    timeout=timeout,
                ) from None
        finally:
            self._calls.pop(call_id, None)
        if call.error is not None:
            raise call.error
        assert call.answer is not None
        return answer_value(call.answer, file)

    def stop(self, reason: str) -> None:
        """Kill the process now and fail every call in flight with `reason`."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._fail_all(lambda call: JsWorkerError(reason, file=call.file))
        self.alive = False
        with suppress(ProcessLookupError):
            self.process.kill()

    async def close(self) -> None:
        """Let the worker exit by itself (it does once stdin ends), kill it if it will not."""
        self.alive = False
        self._stop_reason = self._stop_reason or "the JavaScript bridge was closed"
        self._fail_all(lambda call: JsWorkerError(self._stop_reason or "", file=call.file))
        if self.process.returncode is None:
            with suppress(anyio.BrokenResourceError, OSError):
                await self._stdin.aclose()
            with anyio.move_on_after(_EXIT_GRACE_S):
                await self.process.wait()
        if self.process.returncode is None:
            self.stop(self._stop_reason)
        await self.process.wait()

    def _fail_all(self, error_for: Callable[[_Call], Exception]) -> None:
        for call in list(self._calls.values()):
            if not call.done.is_set():
                call.error = error_for(call)
                call.done.set()
        self._calls.clear()

    async def _read_answers(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None  # checked at construction; mypy cannot carry that over
        pieces: list[bytes] = []
        try:
            async for chunk in stdout:
                if b"\n" not in chunk:
                    pieces.append(chunk)  # a long answer arrives in many chunks; join once, not per chunk
                    continue
                pieces.append(chunk)
                *lines, rest = b"".join(pieces).split(b"\n")
                pieces = [rest] if rest else []
                for line in lines:
                    if line:
                        self._settle(line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await self._died()

    def _settle(self, line: bytes) -> None:
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            # Only user code writing to file descriptor 1 itself (fs.writeSync(1, ...)) gets here.
            log_output(line.decode(errors="replace"), pid=self.process.pid)
            return
        call = self._calls.get(answer.get("id", -1))
        if call is None:
            if answer.get("id") is None:
                get_logger().warning("js.worker.protocol_error", answer=str(answer)[:500])
            return  # its caller gave up (cancelled or timed out) before the answer came
        call.answer = answer
        call.done.set()

    async def _died(self) -> None:
        """stdout ended: the process exited, was killed, or closed it. Fail what is still in flight."""
        self.alive = False
        with anyio.move_on_after(2):  # the exit code and the last words on stderr make the message
            await self.process.wait()
            await self._stderr_done.wait()
        if self.process.returncode is None:  # it closed stdout but lives on: it can no longer answer anyway
            with suppress(ProcessLookupError):
                self.process.kill()
        await self.process.aclose()  # the pipes too: a transport left open is a ResourceWarning at exit
        code = self.process.returncode
        if self._stop_reason is None:
            self._stop_reason = _exit_reason(code, list(self._stderr_tail))
            self._fail_all(lambda call: JsWorkerError(self._stop_reason or "", file=call.file, worker_exit_code=code))
        get_logger().debug("js.worker.stopped", node_pid=self.process.pid, exit_code=code, reason=self._stop_reason)

    async def _forward_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None  # checked at construction
        pending = b""
        try:
            async for chunk in stderr:
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    self._stderr_line(raw)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            if pending:
                self._stderr_line(pending)
            self._stderr_done.set()

    def _stderr_line(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        self._stderr_tail.append(line)
        log_output(line, pid=self.process.pid)


def _exit_reason(code: int | None, stderr_tail: list[str]) -> str:
    """Why the calls in flight failed, for a worker that stopped by itself (user code exited, or a crash)."""
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    last_words = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "")
    said = f"; its last output: {last_words[:300]}" if last_words else ""
    return (
        f"the JavaScript worker {how} while this file was running (process.exit() in user code, or a crash){said};"
        " the next call starts a fresh worker"
    )


class JsBridge:
    """Calls into the user's JavaScript through one lazily started Node worker; use as `async with`.

    `node` fixes the Node.js to use; by default it is found on the first call (`find_node`).
    """

    def __init__(self, *, node: NodeRuntime | None = None) -> None:
        self._node = node
        self._found: dict[bool, NodeRuntime] = {}  # typescript? -> the runtime found for such files
        self._workers: dict[Path, _Worker] = {}  # node executable -> its worker
        self._paths: dict[Path, tuple[Path, str]] = {}
        self._start_lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        self._task_group = await stack.enter_async_context(anyio.create_task_group())
        stack.push_async_callback(self._stop_workers)  # runs before the task group waits for the readers
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        try:
            return await stack.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # The body's own error, which the task group wrapped on its way out: the caller's to see as it was
            # raised (a run's FlowError stays a FlowError), not as a group.
            if exc is not None and list(group.exceptions) == [exc]:
                raise exc from None
            raise

    async def call(self, file: Path, export: str | None, args: Sequence[Any], *, timeout: float) -> Any:
        """Call `file`'s export `export` (None: the default export, or `module.exports` itself) with `args`.

        Returns what it returned (awaited when it is a promise), as JSON decodes it; None for undefined.
        Raises JsError (file and line) when loading or calling fails, JsTimeoutError past `timeout` seconds,
        JsWorkerError when the worker stops under the call, JsUnavailableError when there is no Node for it.
        """
        path, path_text = self._absolute(file)
        worker = await self._worker_for(path)
        request = {"op": "call", "file": path_text, "export": export, "args": list(args)}
        return await worker.request(request, path, timeout)

    async def call_ref(self, ref: JsFunctionRef, args: Sequence[Any], *, timeout: float) -> Any:
        """Call the function a JavaScript config holds at `ref` (see `load_js_config`), as `call` does."""
        path, path_text = self._absolute(ref.file)
        worker = await self._worker_for(path)
        request = {"op": "call_ref", "file": path_text, "path": ref.path, "args": list(args)}
        return await worker.request(request, path, timeout)

    async def evaluate(self, code: str, params: Mapping[str, Any], *, file: Path, line: int = 1, timeout: float) -> Any:
        """Run inline JavaScript from a flow file (a `javascript` assertion, a transform) with `params` in scope.

        promptfoo's rule: one line is an expression, several lines a function body with its own `return`.
        `file` and `line` say where the code is written, so that an error points there ("flow.yaml:42:
        ReferenceError: outptu is not defined"). Returns and raises as `call` does.
        """
        path, path_text = self._absolute(file)
        worker = await self._worker_for(path)
        request = {
            "op": "evaluate",
            "code": code,
            "names": list(params),
            "args": list(params.values()),
            "file": path_text,
            "line": line,
            # The worker stops the code's synchronous part itself a little before `timeout` (a loop that never
            # ends): that call fails alone, and the calls queued behind it still have time to answer.
            "sync_timeout_ms": 1000 * (timeout - min(max(0.1 * timeout, 0.05), 5.0)),
        }
        return await worker.request(request, path, timeout)

    def _absolute(self, file: Path) -> tuple[Path, str]:
        """`file` made absolute (not resolved: Node's module cache is keyed by path), and as text; memoised,
        as a run calls the same few files thousands of times and pathlib is slow at this."""
        known = self._paths.get(file)
        if known is not None:
            return known
        text = os.path.abspath(file)
        absolute = (Path(text), text)
        if file.is_absolute():  # a relative path means another file once the working folder changes
            self._paths[file] = absolute
        return absolute

    async def _worker_for(self, file: Path) -> _Worker:
        runtime = self._runtime_for(file)
        worker = self._workers.get(runtime.executable)
        if worker is not None and worker.alive:
            return worker
        if self._task_group is None:
            raise RuntimeError("JsBridge is used outside `async with JsBridge() as bridge:`")
        async with self._start_lock:  # calls that all arrive first start one worker between them
            worker = self._workers.get(runtime.executable)
            if worker is None or not worker.alive:
                worker = await _Worker.start(runtime, self._task_group)
                self._workers[runtime.executable] = worker
        return worker

    def _runtime_for(self, file: Path) -> NodeRuntime:
        typescript = is_typescript(file)
        if self._node is not None:
            if typescript and not self._node.strips_types:
                raise typescript_unsupported(file, self._node)
            return self._node
        runtime = self._found.get(typescript)
        if runtime is None:
            runtime = self._found[typescript] = find_node(file, typescript=typescript)
        return runtime

    async def _stop_workers(self) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        with anyio.CancelScope(shield=True):
            for worker in workers:
                await worker.close()
            # A grandchild that inherited the worker's stdout would keep the readers waiting for ever.
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
        self._task_group = None
