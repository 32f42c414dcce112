"""GPT-Live's wire: the provider's config keys, the client events it sends and the server events it reads.

GPT-Live (`wss://.../v1/live/sessions`) is not the Realtime protocol: the client sends `session.start` once,
then a continuous stream of `session.input_audio.append` frames; the server streams output audio and
timestamped transcript deltas on one session timeline (milliseconds from the start of the session), delegates
work (`session.delegation.created`), reports usage in seconds and ends with `session.closed`. The shapes here
follow `openai.types.live` (openai 3.63), which rtflow does not import at runtime: the tests pin them.

Server events are read defensively: a frame that is not a JSON object with a string `type`, or an event whose
fields have the wrong types, becomes a protocol warning and is skipped, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from rtflow.durations import Duration
from rtflow.providers.config import CommonConfig
from rtflow.providers.realtime_wire import ErrorBody
from rtflow.providers.tools import native_tools

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "ClientEvents",
    "Closed",
    "DelegationCreated",
    "LiveConfig",
    "LiveError",
    "LiveEvent",
    "OtherLiveEvent",
    "OutputAudio",
    "Started",
    "TranscriptDelta",
    "UsageUpdated",
    "live_url",
    "read_live_event",
]

FRAME_MS = 20
"""Milliseconds of audio per `session.input_audio.append`: a microphone's frame, as the guide streams it."""
SAMPLE_RATE = 24_000
FRAME_BYTES = SAMPLE_RATE * 2 * FRAME_MS // 1000
"""Bytes of one frame of pcm16 mono at 24 kHz (960)."""
_AUDIO_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}


class LiveConfig(CommonConfig):
    """Config keys of `openai:live:MODEL` (the common keys plus these)."""

    instructions: str | None = None
    """The session's instructions (immutable after `session.start`)."""
    voice: str | dict[str, Any] | None = None
    """Output voice: a built-in name (`marin`) or a custom voice `{id: voice_...}`."""
    turn_silence_ms: float = Field(default=800.0, gt=0, le=60_000)
    """A turn's answer ends once the agent has been silent this long after speaking (milliseconds)."""
    turn_timeout: Duration = 30.0
    """The longest a turn waits for the answer to end after the caller's line (a backstop; a duration)."""
    connect_timeout: Duration = 15.0
    """Bound on the handshake plus `session.started`."""
    websocket_timeout: Duration = 60.0
    """Bound on one send the server does not read."""
    delegation: Literal["client"] | dict[str, Any] | None = None
    """Who handles delegated work: `client` (rtflow runs a handler), or the session's `delegation` object as the
    API takes it (`{type: responses, responses: {model, tools, ...}}`; config `tools` are added to its tools).
    Default: `client` when a function handler is configured, else none (the server's default)."""
    delegation_handler: str | None = None
    """The function handler a client delegation runs (default: the only one in `function_handlers`)."""
    acknowledgement_delay_ms: int | None = Field(default=None, ge=0)
    """Milliseconds before the model acknowledges a delegation aloud (the API's default when unset)."""
    store: bool | None = None
    """Whether the server stores the session (for forks and recordings)."""
    safety_identifier: str | None = None
    """A stable id of the end user, for the server's abuse monitoring."""
    playback: Literal["realtime", "unpaced"] = "realtime"
    """How the caller hears the answer: at its real rate from the first delta, or as soon as it arrives."""
    price_per_minute_usd: float | None = Field(default=None, ge=0)
    """US dollars per minute of session, to put a cost on each turn (GPT-Live bills session time, reported in
    `session.usage.updated`). Default: the price table's row for the model; it has none for GPT-Live, whose price
    could not be sourced, so without this key a Live turn has no cost. The turn's usage mark says which was used."""


def live_url(base_url: str) -> str:
    """The WebSocket URL of `client.live.connect()` for an HTTP base URL: `<base>/live/sessions`, ws(s)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/live/sessions", parts.query, ""))


def _delegation(config: LiveConfig) -> dict[str, Any] | None:
    """The session's `delegation` object: config `delegation`, or `client` when a handler is configured."""
    wanted = config.delegation
    if wanted is None and (config.function_handlers or config.function_call_handler):
        wanted = "client"
    if wanted is None:
        return None
    delegation: dict[str, Any] = {"type": "client"} if wanted == "client" else json.loads(json.dumps(wanted))
    if delegation.get("type") == "responses" and config.tools and isinstance(delegation.get("responses"), dict):
        backend = delegation["responses"]
        backend["tools"] = [*backend.get("tools", []), *native_tools(config.tools)]
    if config.acknowledgement_delay_ms is not None:
        delegation["acknowledgement_delay_ms"] = config.acknowledgement_delay_ms
    return delegation


class ClientEvents:
    """Builds the client events of one connection; each command carries an `event_id` (`rtflow-<n>`) so an
    `error` naming it can be tied to it. Audio frames carry none: they are fifty a second and never answered."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def _event(self, event_type: str, **body: Any) -> dict[str, Any]:
        return {"type": event_type, "event_id": f"rtflow-{next(self._ids)}", **body}

    def session_start(self, config: LiveConfig, model: str) -> dict[str, Any]:
        """`session.start`: model, instructions, pcm16 24 kHz both ways, voice and delegation."""
        session: dict[str, Any] = {"model": model, "audio": {"format": dict(_AUDIO_FORMAT)}}
        if config.voice is not None:
            session["audio"]["output"] = {"voice": config.voice}
        if config.instructions:
            session["instructions"] = config.instructions
        delegation = _delegation(config)
        if delegation is not None:
            session["delegation"] = delegation
        if config.store is not None:
            session["store"] = config.store
        if config.safety_identifier:
            session["safety_identifier"] = config.safety_identifier
        return self._event("session.start", session=session)

    @staticmethod
    def audio_append(frame: bytes) -> dict[str, Any]:
        """One frame of the caller's microphone (speech or silence)."""
        return {"type": "session.input_audio.append", "audio": base64.b64encode(frame).decode("ascii")}

    def commentary_append(self, content: str, delegation_id: str) -> dict[str, Any]:
        """A client delegation's result, for the model to say (`session.commentary.append`)."""
        return self._event("session.commentary.append", content=content, delegation_id=delegation_id)

    def session_close(self) -> dict[str, Any]:
        return self._event("session.close")


# -- server events -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    model: str | None


@dataclass(frozen=True, slots=True)
class OutputAudio:
    audio: bytes


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the input (caller) or output (agent) transcript, placed on the session timeline."""

    side: Literal["input", "output"]
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class DelegationCreated:
    delegation_id: str
    target: str
    response_id: str | None
    offset_ms: int | None


@dataclass(frozen=True, slots=True)
class UsageUpdated:
    seconds: float


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str
    seconds: float | None


@dataclass(frozen=True, slots=True)
class LiveError:
    error: ErrorBody


@dataclass(frozen=True, slots=True)
class OtherLiveEvent:
    type: str


LiveEvent = (
    Started | OutputAudio | TranscriptDelta | DelegationCreated | UsageUpdated | Closed | LiveError | OtherLiveEvent
)
Note = Callable[[str], None]


class _Skip(Exception):
    """A field rtflow needs is missing or of the wrong type: the event is skipped (with a warning)."""


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _Skip(f"{name} is {type(value).__name__}")
    return value


def _seconds(usage: Any) -> float | None:
    if not isinstance(usage, dict):
        return None
    value = usage.get("seconds")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _read(kind: str, body: dict[str, Any]) -> LiveEvent:
    match kind:
        case "session.output_audio.delta":
            try:
                return OutputAudio(base64.b64decode(_field(body, "delta", str), validate=True))
            except binascii.Error:
                raise _Skip("delta is not base64") from None
        case "session.output_transcript.delta" | "session.input_transcript.delta":
            side: Literal["input", "output"] = "output" if kind.startswith("session.output") else "input"
            return TranscriptDelta(
                side, _field(body, "delta", str), _field(body, "start_ms", int), _field(body, "end_ms", int)
            )
        case "session.delegation.created":
            delegation = _field(body, "delegation", dict)
            return DelegationCreated(
                _field(delegation, "id", str),
                _field(delegation, "target", str),
                _field(delegation, "response_id", str, required=False),
                _field(body, "offset_ms", int, required=False),
            )
        case "session.usage.updated":
            seconds = _seconds(body.get("usage"))
            if seconds is None:
                raise _Skip("usage.seconds is not a number")
            return UsageUpdated(seconds)
        case "session.closed":
            return Closed(str(_field(body, "reason", str)), _seconds(body.get("usage")))
        case "session.started":
            session = body.get("session")
            model = session.get("model") if isinstance(session, dict) else None
            return Started(model if isinstance(model, str) else None)
        case "error":
            error = _field(body, "error", dict)
            texts = {name: error.get(name) for name in ("type", "code", "message", "client_event_id")}
            clean = {name: value if isinstance(value, str) else None for name, value in texts.items()}
            return LiveError(ErrorBody(clean["type"], clean["code"], clean["message"], clean["client_event_id"]))
        case _:
            return OtherLiveEvent(kind)


def read_live_event(frame: str | bytes, note: Note) -> tuple[str | None, LiveEvent | None]:
    """The frame's event type and what it says; (None, None) or (type, None) for a frame that is skipped."""
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        note(f"a frame that is not JSON ({len(frame)} bytes) was skipped")
        return None, None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        note("a frame without a string `type` was skipped")
        return None, None
    kind: str = body["type"]
    try:
        return kind, _read(kind, body)
    except _Skip as skipped:
        note(f"{kind[:80]} was skipped: {skipped}")
        return kind, None
