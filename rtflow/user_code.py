"""User code (prompt functions, `python` assertions, tool handlers) run where a deadline can stop the wait for it.

Flows name Python functions that rtflow calls on every turn, and anything may be in them: a `time.sleep`, a
busy loop, a `sys.exit()`. `call_user_code` runs a sync function in a worker thread, so the event loop keeps
serving the other conversations (and the signal handlers) while it runs, and awaits an async one; either way
under a time limit. Whatever goes wrong, a timeout or anything raised (`SystemExit` and `KeyboardInterrupt`
included: user code may not end the run), comes back as one `UserCodeError` naming what was called, which the
caller turns into its own kind of failure (a turn's prompt error, an assertion that could not be judged, a
tool's error output). Sync functions of several conversations may so run at once, each in its own thread: one
that keeps state between calls must guard it.

A thread cannot be killed. A sync call past its deadline (or cancelled with the run) is abandoned: rtflow stops
waiting for it, and the thread runs on until the function returns, if ever. Such a thread would keep the process
alive at exit, since Python joins its worker threads then; so the command line asks `stuck_calls()` once a
command is over and, when any are left, ends the process with `os._exit` (`exit_past_stuck_calls`). An async
function is awaited in the event loop itself: the limit stops it at its next `await`, but one that blocks
without awaiting blocks the loop, as any coroutine would.

anyio is imported inside the functions that need it: the command line imports this module at exit, and a
command such as `rtflow --version` must not pay for anyio.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtflow.errors import RtflowError

__all__ = ["UserCodeError", "call_user_code", "exit_past_stuck_calls", "stuck_calls"]


class UserCodeError(RtflowError):
    """A user function did not give a result: it raised, tried to end the process, or ran past its deadline.

    `what` names the function as the flow does (`prompt function p.py:build`), `reason` says what happened
    (`did not return within 30 s`); the message is the two together. When the function raised, the exception
    is the `__cause__`.
    """

    def __init__(self, what: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{what} {reason}")
        self.what = what
        self.reason = reason
        self.timed_out = timed_out


@dataclass(eq=False)
class _ThreadCall:
    """One sync call handed to a worker thread."""

    what: str
    started: bool = False
    """Set by the thread as the function starts (a call cancelled while it waited for a thread never does)."""
    finished: bool = False
    """Set by the thread when the function is done, under `_abandoned_lock`."""


_abandoned: set[_ThreadCall] = set()
"""Sync calls rtflow stopped waiting for; each leaves the set when its function returns at last (one cancelled
before a thread took it stays, but never started, it never counts as stuck)."""
_abandoned_lock = threading.Lock()


def stuck_calls() -> list[str]:
    """What each abandoned call that is still running was (`tool 'x' handler tools.py:hang`), sorted."""
    with _abandoned_lock:
        return sorted(call.what for call in _abandoned if call.started)


def exit_past_stuck_calls(code: int) -> None:
    """End the process now with `code` when abandoned user code is still running; return when none is.

    Called by the command line once a command is over, with its exit code: a thread stuck in a user function
    would otherwise keep the process alive forever after the summary was printed. `os._exit` runs no cleanup,
    so the standard streams are flushed first (everything else of the command is closed by then).
    """
    if not stuck_calls():
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream has nothing left to flush
            stream.flush()
    os._exit(code)


async def call_user_code(fn: Callable[..., Any], *args: Any, deadline_s: float, what: str) -> Any:
    """`fn(*args)`: in a worker thread when `fn` is sync, awaited when it is async, within `deadline_s` seconds.

    Raises `UserCodeError` (message: `{what} {what happened}`) when the function raises anything or does not
    return in time. A cancellation from outside (the run stopping) is not the function's fault and goes through
    as it is; a sync call it interrupts is abandoned like one past its deadline.
    """
    import anyio

    with anyio.CancelScope(deadline=anyio.current_time() + deadline_s) as scope:
        if inspect.iscoroutinefunction(fn):
            return await _await_user_code(fn(*args), what)
        result = await _run_in_thread(fn, args, what)
        if inspect.isawaitable(result):  # a sync callable that hands back a coroutine (a partial, a lambda)
            return await _await_user_code(result, what)
        return result
    assert scope.cancelled_caught  # only the deadline ends the block without a return
    raise UserCodeError(what, f"did not return within {deadline_s:g} s", timed_out=True)


async def _await_user_code(awaitable: Any, what: str) -> Any:
    try:
        return await awaitable
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # never the loop's own cancellation
        raise _failure(what, exc) from exc


async def _run_in_thread(fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> Any:
    import anyio.to_thread

    call = _ThreadCall(what)

    def run() -> Any:
        call.started = True
        try:
            return fn(*args)
        except BaseException as exc:  # everything raised in this thread is the user's (signals go to the main one)
            raise _failure(what, exc) from exc
        finally:
            with _abandoned_lock:  # the same lock as the check below: a call is never left behind as stuck
                call.finished = True
                _abandoned.discard(call)

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    finally:
        with _abandoned_lock:
            if not call.finished:  # the wait was cancelled (the deadline, or the run stopping): the thread runs on
                _abandoned.add(call)


def _failure(what: str, exc: BaseException) -> UserCodeError:
    """What a user function's exception is reported as."""
    if isinstance(exc, SystemExit):
        return UserCodeError(what, f"called sys.exit({exc.code!r}); user code may not end the run")
    if isinstance(exc, KeyboardInterrupt):
        return UserCodeError(what, "raised KeyboardInterrupt; user code may not end the run")
    detail = str(exc)
    return UserCodeError(what, f"raised {type(exc).__name__}: {detail}" if detail else f"raised {type(exc).__name__}")
