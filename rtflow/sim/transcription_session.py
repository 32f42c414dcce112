"""Transcription sessions: what a socket opened with `/v1/realtime?intent=transcription` holds and accepts.

The live GA service decides the kind of session when the socket opens: `?intent=transcription` (and no `model`)
gives a transcription session, which only hears audio. Its `session.created` carries a session of `type:
"transcription"` (`object: realtime.transcription_session`, the official `RealtimeTranscriptionSessionCreateRequest`
plus the live-only `id`, `object` and `expires_at`); `session.update` takes the same shape: `audio.input` (`format`,
`transcription`, `turn_detection`, `noise_reduction`) and `include`. Committed audio, by hand or by the server VAD,
becomes a user item that is transcribed (`.delta` events, then `.completed` with usage) and never answered.

What the live service refuses, with its words:
- a `model` on the URL of a transcription socket (`invalid_model`, then close 3000, like any refused socket);
- a realtime-shaped `session.update` here, or a transcription-shaped one in a realtime session (`invalid_parameter`);
- server turn detection with the streaming-only transcription models (`gpt-realtime-whisper`, `gpt-live-transcribe`);
- client events a transcription session has no use for (`response.create`, `conversation.item.create`, ...): the
  error of any unknown event type, naming the ones it supports. The session stays open.

The state is the neutral `SessionSettings` of `rtflow.sim.session_state`; only GA has transcription sessions.
"""

from __future__ import annotations

from typing import Any

from rtflow.sim.session_state import (
    GA_FORMAT_SHAPES,
    SessionSettings,
    SettingsError,
    check_noise_reduction,
    ga_format,
    invalid,
    unknown_keys,
)

__all__ = [
    "MODEL_ON_TRANSCRIPTION_URL",
    "TRANSCRIPTION_EVENTS",
    "apply_transcription_update",
    "transcription_session",
    "transcription_settings",
]

MODEL_ON_TRANSCRIPTION_URL = "You must not provide a model parameter for transcription sessions."
"""The live refusal of `?intent=transcription&model=...` (error code `invalid_model`)."""
TRANSCRIPTION_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.retrieve",
    "conversation.item.delete",
)
"""The client events a transcription session handles; any other gets the unknown-event error."""
_DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
}
"""What a live transcription session starts with (captures show these four keys, a shorter silence than realtime)."""
_NO_TURN_DETECTION_MODELS = frozenset({"gpt-realtime-whisper", "gpt-live-transcribe"})
"""Streaming transcription models that segment audio themselves: the live service refuses server VAD for them."""
_TRANSCRIPTION_KEYS = frozenset({"model", "language", "languages", "prompt", "keywords", "delay"})
_TURN_DETECTION_KEYS = {
    "server_vad": frozenset(
        {
            "type",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "create_response",
            "interrupt_response",
            "idle_timeout_ms",
        }
    ),
    "semantic_vad": frozenset({"type", "eagerness", "create_response", "interrupt_response"}),
}
"""The keys of each kind of turn detection, as the official transcription session types declare them."""


def transcription_settings() -> SessionSettings:
    """A new transcription session's state: no session model, no transcription model yet, server VAD on."""
    return SessionSettings(model="", turn_detection=dict(_DEFAULT_TURN_DETECTION))


def transcription_session(session_id: str, settings: SessionSettings, expires_at: int) -> dict[str, Any]:
    """The session object of a transcription session's `session.created` / `session.updated`."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": GA_FORMAT_SHAPES[settings.input_format],
                "transcription": settings.transcription,
                "noise_reduction": settings.noise_reduction,
                "turn_detection": settings.turn_detection,
            }
        },
        "include": settings.include,
    }


def _object(param: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid type for '{param}': expected an object.")
    return value


def apply_transcription_update(settings: SessionSettings, update: Any) -> SessionSettings:
    """`settings` with a transcription `session.update` applied; refusals change nothing."""
    session = _object("session", update)
    if session.get("type") != "transcription":
        if "type" not in session:
            raise SettingsError(
                "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
            )
        raise SettingsError(
            "invalid_parameter",
            "Passing a realtime session update event to a transcription session is not allowed.",
            None,
        )
    unknown_keys("session", session, frozenset({"type", "audio", "include"}))
    new = settings.copy()
    if "include" in session:
        new.include = _include(session["include"])
    audio = _object("session.audio", session.get("audio") or {})
    unknown_keys("session.audio", audio, frozenset({"input"}))
    audio_in = _object("session.audio.input", audio.get("input") or {})
    unknown_keys(
        "session.audio.input", audio_in, frozenset({"format", "transcription", "turn_detection", "noise_reduction"})
    )
    if "format" in audio_in:
        new.input_format = ga_format("session.audio.input.format", audio_in["format"])
    if "transcription" in audio_in:
        new.transcription = _transcription(audio_in["transcription"])
    if "noise_reduction" in audio_in:
        new.noise_reduction = check_noise_reduction("session.audio.input.noise_reduction", audio_in["noise_reduction"])
    if "turn_detection" in audio_in:
        new.turn_detection = _turn_detection(audio_in["turn_detection"], new.transcription)
    return new


def _include(value: Any) -> list[str] | None:
    allowed = "item.input_audio_transcription.logprobs"
    if value is None:
        return None
    if not isinstance(value, list) or any(entry != allowed for entry in value):
        raise invalid("session.include", f"Invalid value for 'include': the only supported value is '{allowed}'.")
    return list(value)


def _transcription(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    transcription = _object("session.audio.input.transcription", value)
    unknown_keys("session.audio.input.transcription", transcription, _TRANSCRIPTION_KEYS)
    if "language" in transcription and "languages" in transcription:
        raise invalid(
            "session.audio.input.transcription.languages",
            "'language' and 'languages' cannot be set together; use one of them.",
        )
    return dict(transcription)


def _turn_detection(value: Any, transcription: dict[str, Any] | None) -> dict[str, Any] | None:
    param = "session.audio.input.turn_detection"
    if value is None:
        return None
    detection = _object(param, value)
    kind = detection.get("type")
    if kind not in _TURN_DETECTION_KEYS:
        raise invalid(
            f"{param}.type", "Invalid value for 'turn_detection.type': expected 'server_vad' or 'semantic_vad'."
        )
    unknown_keys(param, detection, _TURN_DETECTION_KEYS[kind])
    if (transcription or {}).get("model") in _NO_TURN_DETECTION_MODELS:
        raise invalid(param, "Turn detection is not supported for this transcription model.")
    return {**_DEFAULT_TURN_DETECTION, **detection} if kind == "server_vad" else dict(detection)
