"""Voice turns on the Realtime API: which audio a turn sends, and how it is streamed.

A turn is a voice turn when its user message carries an `input_audio` content part with a `file` (or base64
`audio`), or when the turn's vars hold `audio` (`vars.audio: file://clips/q1.wav`). In the second case the
prompt still renders as usual (its text is what the records, the report and a replayed history show), and
the turn's last user message is sent as that audio *instead of* its text. `vars.transcript`, when given, is
kept with the audio as what it says: the Chat fallback sends it in place of the audio.

Streaming: the file is converted to the session's input format (pcm16 24 kHz, or G.711 8 kHz) and sent in
`audio_chunk_ms` pieces, optionally paced like a live microphone (`realtime_pacing`). With turn detection off
the client commits the buffer, waits for `input_audio_buffer.committed` (a clip under 100 ms is refused there
with `input_audio_buffer_commit_empty`, which becomes an InvalidRequestError naming the file) and then asks for
the response. With `server_vad` / `semantic_vad` the buffer is cleared first, the clip is followed by the
silence an open microphone would send, and the server commits and starts the response itself.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from rtflow.audio.files import (
    BYTES_PER_SECOND,
    AudioFileError,
    audio_seconds,
    chunk,
    encode_for_session,
    silence,
    vars_audio_path,
)
from rtflow.errors import InvalidRequestError
from rtflow.messages import AUDIO_PART_TYPES, ContentPart, Message, TurnRequest
from rtflow.providers.realtime_events import EventBuilder, RealtimeConfig

__all__ = ["InputAudio", "TurnDetection", "load_input_audio", "outgoing_messages", "stream_audio"]

Post = Callable[[dict[str, Any]], Awaitable[None]]
_VAD_MARGIN_S = 0.3
"""Silence sent beyond the VAD's `silence_duration_ms`, so that the end of speech is surely detected."""


@dataclass(frozen=True)
class TurnDetection:
    """How a session's turns end: by the client's commit, or by the server's voice activity detection."""

    server_vad: bool
    """The server detects speech and commits the buffer itself."""
    server_responds: bool
    """The server also starts the response (`create_response`, true by default)."""
    silence_s: float
    """How much trailing silence the server waits for before it ends the user's turn."""

    @classmethod
    def of_client(cls) -> TurnDetection:
        """Turn detection off: the client commits and asks for the response."""
        return cls(server_vad=False, server_responds=False, silence_s=0.0)

    @classmethod
    def of(cls, config: RealtimeConfig) -> TurnDetection:
        """The turn detection a session with `config` runs with."""
        detection = config.turn_detection
        if not detection or detection.get("type") not in ("server_vad", "semantic_vad"):
            return cls.of_client()
        silence_ms = float(detection.get("silence_duration_ms") or 500)
        return cls(
            server_vad=True,
            server_responds=bool(detection.get("create_response", True)),
            silence_s=silence_ms / 1000 + _VAD_MARGIN_S,
        )


@dataclass(frozen=True)
class InputAudio:
    """One piece of input audio, converted to the session's format."""

    source: str
    """Where it came from (a file path, or `inline audio`), for error messages and records."""
    data: bytes
    audio_format: str

    @property
    def seconds(self) -> float:
        """How long it plays."""
        return audio_seconds(len(self.data), self.audio_format)


def outgoing_messages(request: TurnRequest, base_dir: Path) -> list[Message]:
    """The request's messages as they go on the wire: with `vars.audio`, the last user message becomes audio."""
    path = vars_audio_path(request.vars, base_dir)
    if path is None:
        return list(request.messages)
    messages = list(request.messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            transcript = request.vars.get("transcript")
            part = ContentPart(type="input_audio", file=str(path), transcript=str(transcript) if transcript else None)
            messages[index] = Message(role="user", content=[part])
            break
    else:
        raise InvalidRequestError(f"vars.audio is set ({path.name}) but the prompt rendered no user message")
    return messages


def load_input_audio(part: ContentPart, base_dir: Path, audio_format: str, label: str) -> InputAudio | None:
    """The audio of a content part in `audio_format`, or None when the part holds none."""
    if part.type not in AUDIO_PART_TYPES:
        return None
    if part.file:
        path = Path(part.file)
        if not path.is_absolute():
            path = base_dir / path
        try:
            return InputAudio(str(path), encode_for_session(path, audio_format), audio_format)
        except AudioFileError as exc:
            raise InvalidRequestError(str(exc), provider=label) from None
    if part.audio:
        # Inline audio is taken to be in the session's format already, as the API takes it.
        return InputAudio("inline audio", base64.b64decode(part.audio), audio_format)
    return None


def chunk_bytes(config: RealtimeConfig, audio_format: str) -> int:
    """Bytes per append event for `audio_chunk_ms`, whole samples only."""
    width = 2 if audio_format == "pcm16" else 1
    size = BYTES_PER_SECOND[audio_format] * config.audio_chunk_ms // 1000
    return max(width, size - size % width)


async def stream_audio(
    post: Post,
    events: EventBuilder,
    audio: InputAudio,
    config: RealtimeConfig,
    detection: TurnDetection,
) -> float:
    """Append `audio` chunk by chunk (paced when configured); returns the milliseconds it took.

    Under server VAD the buffer is cleared first and trailing silence follows the clip; otherwise the caller
    commits.
    """
    data = audio.data
    if detection.server_vad:
        await post(events.audio_clear())
        data += silence(detection.silence_s, audio.audio_format)
    started = time.perf_counter()
    per_second = BYTES_PER_SECOND[audio.audio_format]
    sent = 0
    for piece in chunk(data, chunk_bytes(config, audio.audio_format)):
        sent += len(piece)
        if config.realtime_pacing:
            # A microphone hands over a chunk once it has been spoken: wait for the end of this one.
            await anyio.sleep(max(0.0, started + sent / per_second - time.perf_counter()))
        await post(events.audio_append(piece))
    return (time.perf_counter() - started) * 1000
