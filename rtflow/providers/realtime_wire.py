"""The Realtime server's events, read defensively into typed values.

Every frame the server sends goes through `read_event`, the one place where its JSON becomes values rtflow
uses. Nothing here raises: a frame that is not JSON (or not an object with a string `type`), an event type of
neither dialect, or an event whose one essential field is unusable (a delta that is not a string, audio that is
not base64) is skipped, and a field of the wrong type (`usage.input_tokens: "12"`, `content: 5`) is read as
absent; each is told to `note`, the turn's protocol warnings. Unknown keys are ignored silently, as the live
service adds some (`obfuscation`, `phase`, `session.expires_at`); event types rtflow has no use for become
`OtherEvent`. Whether an event belongs to the turn (its `response_id`) is decided by `realtime_outcomes`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from rtflow.messages import Usage
from rtflow.providers.realtime_mcp import MCP_ITEM_TYPES, McpApprovalRequest, McpCallItem, read_mcp_item
from rtflow.providers.tools import PendingCall
from rtflow.providers.wire_fields import Note, field_count, field_figure, field_mapping, field_text, preview

__all__ = [
    "AudioCommitted",
    "AudioDelta",
    "ErrorBody",
    "ErrorEvent",
    "IdleTimeout",
    "Note",
    "OtherEvent",
    "OutputItemAdded",
    "RateLimit",
    "RateLimitsUpdated",
    "ResponseCreated",
    "ResponseDone",
    "ServerEvent",
    "SessionCreated",
    "SpeechStopped",
    "TextDelta",
    "Transcription",
    "read_event",
    "read_frame",
    "read_object",
]

"""Where a reader tells what it skipped (a turn's `ProtocolNotes`)."""

_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
        "response.text.delta",
        "response.audio_transcript.delta",
    }
)
_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
KNOWN_TYPES = frozenset(
    {
        # GA and beta server events (openai.types.realtime and openai.types.beta.realtime).
        "conversation.created",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.deleted",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "error",
        "input_audio_buffer.cleared",
        "input_audio_buffer.committed",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.timeout_triggered",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "mcp_list_tools.in_progress",
        "output_audio_buffer.cleared",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "rate_limits.updated",
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.created",
        "response.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.text.delta",
        "response.text.done",
        "session.created",
        "session.updated",
        "transcription_session.created",
        "transcription_session.updated",
    }
)
"""Every server event type of both dialects; any other type is skipped with a warning."""

"""Token counts above this are not counts (and would overflow the price arithmetic)."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text (or of its audio transcript)."""

    response_id: str | None
    item_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of the answer's audio, decoded."""

    response_id: str | None
    item_id: str | None
    audio: bytes


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    """An item a response started: ties the item's later events to the response."""

    response_id: str | None
    item_id: str | None
    phase: str | None = None
    """`commentary` or `final_answer` on the assistant messages of newer models (GA); None elsewhere."""


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """A response began. `out_of_band`: it belongs to no conversation (`conversation_id: null`)."""

    response_id: str | None
    out_of_band: bool


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """What an `error` event (or a failed response's `status_details.error`) says."""

    type: str | None = None
    code: str | None = None
    message: str | None = None
    event_id: str | None = None
    """The client event this error is about, when the server says."""


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended; everything of it rtflow could read."""

    response_id: str | None
    out_of_band: bool
    status: str | None
    reason: str | None = None
    error: ErrorBody | None = None
    texts: tuple[str, ...] = ()
    """The text (or transcript) of each message content part of the output, in order (commentary aside)."""
    commentary: tuple[str, ...] = ()
    """The text of the output's `commentary` messages (what a reasoning model says while it works)."""
    calls: tuple[PendingCall, ...] = ()
    mcp: tuple[McpCallItem | McpApprovalRequest, ...] = ()
    """The output's MCP items: calls the server ran on an MCP server, and approvals it asks for."""
    usage: Usage = field(default_factory=Usage)
    unreadable: tuple[str, ...] = ()
    """What of the output could not be read (a message's content, a call): the answer may lack it."""
    readable: bool = True
    """False when `response` itself is not an object: nothing of the response can be known."""


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An `error` event."""

    error: ErrorBody


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """The first event of a connection; `model` as the server names it."""

    model: str | None


@dataclass(frozen=True, slots=True)
class AudioCommitted:
    """The input audio buffer became a user item."""

    item_id: str | None


@dataclass(frozen=True, slots=True)
class Transcription:
    """The server's transcription of an input audio item."""

    item_id: str | None
    transcript: str


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    """The server VAD's idle timeout fired (`input_audio_buffer.timeout_triggered`): the caller was silent for
    `idle_timeout_ms` after the last answer, from `audio_start_ms` to `audio_end_ms` of the input audio. The server
    commits that stretch as item `item_id` and answers it itself (a prompt to go on)."""

    item_id: str | None
    audio_start_ms: float | None
    audio_end_ms: float | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The server's VAD heard the end of speech."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One entry of `rate_limits.updated`; a figure that is not a finite number is None."""

    name: str | None
    remaining: float | None
    reset_seconds: float | None


@dataclass(frozen=True, slots=True)
class RateLimitsUpdated:
    """The server's current rate-limit figures."""

    limits: tuple[RateLimit, ...]


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A known event type rtflow has no use for."""

    type: str


ServerEvent = (
    TextDelta
    | AudioDelta
    | OutputItemAdded
    | ResponseCreated
    | ResponseDone
    | ErrorEvent
    | SessionCreated
    | AudioCommitted
    | Transcription
    | SpeechStopped
    | IdleTimeout
    | RateLimitsUpdated
    | OtherEvent
)


def read_event(raw: str | bytes, note: Note) -> ServerEvent | None:
    """The event in one frame, or None when the frame is skipped (and `note` told why). Never raises."""
    return read_frame(raw, note)[1]


def read_frame(raw: str | bytes, note: Note) -> tuple[str | None, ServerEvent | None]:
    """`read_event`, with the event's type as sent (None for a frame that is not an event): several types read
    into one value (`TextDelta` is any of four), and a turn's timeline keeps the type the server used."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        note(f"a frame that is not JSON was skipped: {preview(raw)}")
        return None, None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        note(f"a frame that is not an event (a JSON object with a string type) was skipped: {preview(event)}")
        return None, None
    kind: str = event["type"]
    try:
        return kind, _read(kind, event, note)
    except Exception as exc:  # a reader's own slip must not let a server's frame end the turn
        note(f"{kind}: the event could not be read ({type(exc).__name__}) and was skipped")
        return kind, None


def read_object(event: dict[str, Any], note: Note) -> ServerEvent | None:
    """`read_event` for an already decoded event object."""
    kind = event.get("type")
    if not isinstance(kind, str):
        note(f"an event without a string type was skipped: {preview(event)}")
        return None
    try:
        return _read(kind, event, note)
    except Exception as exc:  # a reader's own slip must not let a server's frame end the turn
        note(f"{kind}: the event could not be read ({type(exc).__name__}) and was skipped")
        return None


def _read(kind: str, event: dict[str, Any], note: Note) -> ServerEvent | None:
    if kind in _TEXT_DELTAS:
        delta = event.get("delta")
        if not isinstance(delta, str):
            note(f"{kind}: delta is {preview(delta)}, not a string; the delta was skipped")
            return None
        return TextDelta(field_text(event, "response_id", kind, note), field_text(event, "item_id", kind, note), delta)
    if kind in _AUDIO_DELTAS:
        return _audio_delta(kind, event, note)
    if kind == "response.done":
        return _response_done(event, note)
    if kind == "response.created":
        response = field_mapping(event, "response", kind, note)
        return ResponseCreated(field_text(response, "id", f"{kind}: response", note), _out_of_band(response))
    if kind == "response.output_item.added":
        item = field_mapping(event, "item", kind, note)
        return OutputItemAdded(
            field_text(event, "response_id", kind, note),
            field_text(item, "id", f"{kind}: item", note),
            field_text(item, "phase", f"{kind}: item", note) if "phase" in item else None,
        )
    if kind == "error":
        return ErrorEvent(_error_body(event.get("error"), kind, note))
    if kind == "session.created":
        session = field_mapping(event, "session", kind, note)
        return SessionCreated(field_text(session, "model", f"{kind}: session", note))
    if kind == "input_audio_buffer.committed":
        return AudioCommitted(field_text(event, "item_id", kind, note))
    if kind == "conversation.item.input_audio_transcription.completed":
        transcript = field_text(event, "transcript", kind, note)
        if transcript is None:
            return None
        return Transcription(field_text(event, "item_id", kind, note), transcript)
    if kind == "input_audio_buffer.speech_stopped":
        return SpeechStopped()
    if kind == "input_audio_buffer.timeout_triggered":
        return IdleTimeout(
            field_text(event, "item_id", kind, note),
            field_figure(event, "audio_start_ms", kind, note),
            field_figure(event, "audio_end_ms", kind, note),
        )
    if kind == "rate_limits.updated":
        return _rate_limits(event, note)
    if kind in KNOWN_TYPES:
        return OtherEvent(kind)
    note(f"an event of unknown type {kind!r} was skipped")
    return None


def _audio_delta(kind: str, event: dict[str, Any], note: Note) -> AudioDelta | None:
    delta = event.get("delta")
    if not isinstance(delta, str):
        note(f"{kind}: delta is {preview(delta)}, not base64 text; the audio was skipped")
        return None
    try:
        audio = base64.b64decode(delta, validate=True)
    except (binascii.Error, ValueError):
        note(f"{kind}: delta is not valid base64 ({preview(delta)}); the audio was skipped")
        return None
    return AudioDelta(field_text(event, "response_id", kind, note), field_text(event, "item_id", kind, note), audio)


def _response_done(event: dict[str, Any], note: Note) -> ResponseDone:
    kind = "response.done"
    response = event.get("response")
    if not isinstance(response, dict):
        note(f"{kind}: response is {preview(response)}, not an object; the response cannot be read")
        return ResponseDone(None, False, None, readable=False)
    where = f"{kind}: response"
    status = field_text(response, "status", where, note)
    details = field_mapping(response, "status_details", where, note)
    reason = field_text(details, "reason", f"{where}.status_details", note)
    error = _error_body(details["error"], f"{where}.status_details", note) if details.get("error") else None
    texts: list[str] = []
    commentary: list[str] = []
    calls: list[PendingCall] = []
    mcp: list[McpCallItem | McpApprovalRequest] = []
    unreadable: list[str] = []
    output = response.get("output")
    if output is not None and not isinstance(output, list):
        note(f"{where}.output is {preview(output)}, not a list; skipped")
        unreadable.append("output")
        output = None
    for index, item in enumerate(output or []):
        is_commentary = isinstance(item, dict) and item.get("phase") == "commentary"
        _read_output_item(
            item, f"{where}.output[{index}]", note, commentary if is_commentary else texts, calls, mcp, unreadable
        )
    return ResponseDone(
        response_id=field_text(response, "id", where, note),
        out_of_band=_out_of_band(response),
        status=status,
        reason=reason,
        error=error,
        texts=tuple(texts),
        commentary=tuple(commentary),
        calls=tuple(calls),
        mcp=tuple(mcp),
        usage=_usage(response.get("usage"), f"{where}.usage", note),
        unreadable=tuple(unreadable),
    )


def _read_output_item(
    item: Any,
    where: str,
    note: Note,
    texts: list[str],
    calls: list[PendingCall],
    mcp: list[McpCallItem | McpApprovalRequest],
    unreadable: list[str],
) -> None:
    if not isinstance(item, dict):
        note(f"{where} is {preview(item)}, not an object; skipped")
        unreadable.append(where)
        return
    item_type = item.get("type")
    if item_type == "function_call":
        call_id = field_text(item, "call_id", where, note)
        name = field_text(item, "name", where, note)
        arguments = field_text(item, "arguments", where, note)
        if call_id is None or name is None or (arguments is None and item.get("arguments") is not None):
            note(f"{where}: a function call without string call_id, name and arguments was skipped")
            unreadable.append(where)
            return
        calls.append((call_id, name, arguments or ""))
    elif item_type in MCP_ITEM_TYPES:
        read = read_mcp_item(item, where, note)
        if read is None:
            unreadable.append(where)
        else:
            mcp.append(read)
    elif item_type == "message":
        content = item.get("content")
        if content is None:
            return
        if not isinstance(content, list):
            note(f"{where}.content is {preview(content)}, not a list; skipped")
            unreadable.append(where)
            return
        for position, part in enumerate(content):
            if not isinstance(part, dict):
                note(f"{where}.content[{position}] is {preview(part)}, not an object; skipped")
                unreadable.append(f"{where}.content[{position}]")
                continue
            text = field_text(part, "text", f"{where}.content[{position}]", note)
            transcript = field_text(part, "transcript", f"{where}.content[{position}]", note)
            texts.append(text or transcript or "")


def _usage(raw: Any, where: str, note: Note) -> Usage:
    if raw is None:
        return Usage()
    if not isinstance(raw, dict):
        note(f"{where} is {preview(raw)}, not an object; no usage was read")
        return Usage()
    input_details = field_mapping(raw, "input_token_details", where, note)
    output_details = field_mapping(raw, "output_token_details", where, note)
    return Usage(
        input_tokens=field_count(raw, "input_tokens", where, note),
        output_tokens=field_count(raw, "output_tokens", where, note),
        total_tokens=field_count(raw, "total_tokens", where, note),
        cached_tokens=field_count(input_details, "cached_tokens", f"{where}.input_token_details", note),
        input_audio_tokens=field_count(input_details, "audio_tokens", f"{where}.input_token_details", note),
        output_audio_tokens=field_count(output_details, "audio_tokens", f"{where}.output_token_details", note),
    )


def _rate_limits(event: dict[str, Any], note: Note) -> RateLimitsUpdated | None:
    kind = "rate_limits.updated"
    raw = event.get("rate_limits")
    if not isinstance(raw, list):
        note(f"{kind}: rate_limits is {preview(raw)}, not a list; the event was skipped")
        return None
    limits: list[RateLimit] = []
    for index, entry in enumerate(raw):
        where = f"{kind}: rate_limits[{index}]"
        if not isinstance(entry, dict):
            note(f"{where} is {preview(entry)}, not an object; skipped")
            continue
        remaining = field_figure(entry, "remaining", where, note)
        reset = field_figure(entry, "reset_seconds", where, note)
        if (entry.get("remaining") is not None and remaining is None) or (
            entry.get("reset_seconds") is not None and reset is None
        ):
            continue  # half a limit is no limit: an exhausted budget with an unreadable reset must not pause
        limits.append(RateLimit(field_text(entry, "name", where, note), remaining, reset))
    return RateLimitsUpdated(tuple(limits))


def _error_body(raw: Any, where: str, note: Note) -> ErrorBody:
    if not isinstance(raw, dict):
        note(f"{where}: error is {preview(raw)}, not an object")
        return ErrorBody()
    where = f"{where}: error" if where == "error" else f"{where}.error"
    code = raw.get("code")
    numeric = isinstance(code, int | float) and not isinstance(code, bool)  # a number is still a code
    return ErrorBody(
        type=field_text(raw, "type", where, note),
        code=str(code) if numeric else field_text(raw, "code", where, note),
        message=field_text(raw, "message", where, note),
        event_id=field_text(raw, "event_id", where, note),
    )


def _out_of_band(response: dict[str, Any]) -> bool:
    # GA and beta: `conversation_id` is null exactly when the response was created with `conversation: none`.
    return "conversation_id" in response and response["conversation_id"] is None
