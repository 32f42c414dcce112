"""The server VAD's idle timeout (`audio.input.turn_detection.idle_timeout_ms`): a caller silent for too long.

As the official type describes the live service: the timeout counts from the end of the last response's audio (its
`response.done` plus the audio's playing time), and when it runs out without the caller speaking the server sends
`input_audio_buffer.timeout_triggered` (`audio_start_ms` .. `audio_end_ms`: the silent stretch of the input buffer),
commits what the buffer holds, however little, as a user `input_audio` item, and answers it: the model prompts the
caller to go on. The simulator's prompt is `IDLE_PROMPT`.

Speech (`speech_started`) and any new response stop the watch; the next response to finish starts it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

__all__ = ["IDLE_PROMPT", "IdleWatch", "idle_timeout_s"]

IDLE_PROMPT = "Are you still there?"
"""What the simulator's model says when the caller has been silent too long."""


def idle_timeout_s(detection: Mapping[str, Any] | None) -> float | None:
    """The idle timeout of a session's turn detection, in seconds; None when it has none (only server VAD has)."""
    if not detection or detection.get("type") != "server_vad":
        return None
    value = detection.get("idle_timeout_ms")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1000
    return None


class IdleWatch:
    """One session's idle timer: at most one runs, and starting a new one stops the old."""

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None

    def stop(self) -> None:
        """The caller spoke, or a response began: no timeout until the next response has finished."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    def start(
        self,
        tasks: TaskGroup,
        playing_s: float,
        timeout_s: float,
        written_ms: Callable[[], int],
        fire: Callable[[int], Awaitable[None]],
    ) -> None:
        """Time out `timeout_s` after `playing_s` (the answer's audio) from now; `fire` gets `audio_start_ms`.

        `written_ms` says how much input audio the session has received so far: the silent stretch starts where
        the input buffer stood when the answer finished playing.
        """
        self.stop()
        scope = self._scope = anyio.CancelScope()
        tasks.start_soon(self._watch, scope, playing_s, timeout_s, written_ms, fire)

    async def _watch(
        self,
        scope: anyio.CancelScope,
        playing_s: float,
        timeout_s: float,
        written_ms: Callable[[], int],
        fire: Callable[[int], Awaitable[None]],
    ) -> None:
        with scope:
            await anyio.sleep(playing_s)
            silent_from = written_ms()
            await anyio.sleep(timeout_s)
        if scope.cancel_called:
            return
        # From here the timeout has fired: speech or a response that comes now no longer stops it.
        if self._scope is scope:
            self._scope = None
        await fire(silent_from)
