"""The two shapes of the Realtime protocol: GA (default) and beta (`OpenAI-Beta: realtime=v1`).

The session state, items and responses are held in one neutral form (items in the GA shape); a `Dialect`
renders them and names the events. Only renaming and reshaping live here, no behaviour.
"""

from __future__ import annotations

from typing import Any

from rtflow.sim.mcp import shown_tool
from rtflow.sim.session_state import GA_FORMAT_SHAPES, SessionSettings

__all__ = ["BETA", "GA", "Dialect"]

_BETA_CONTENT_TYPES = {"output_text": "text", "output_audio": "audio"}
_GA_CONTENT_TYPES = {"text": "output_text", "audio": "output_audio"}


class Dialect:
    """Event names and shapes of one dialect."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_beta = name == "beta"
        self.text_delta = "response.text.delta" if self.is_beta else "response.output_text.delta"
        self.text_done = "response.text.done" if self.is_beta else "response.output_text.done"
        self.audio_delta = "response.audio.delta" if self.is_beta else "response.output_audio.delta"
        self.audio_done = "response.audio.done" if self.is_beta else "response.output_audio.done"
        self.transcript_delta = (
            "response.audio_transcript.delta" if self.is_beta else "response.output_audio_transcript.delta"
        )
        self.transcript_done = (
            "response.audio_transcript.done" if self.is_beta else "response.output_audio_transcript.done"
        )

    def session(self, session_id: str, settings: SessionSettings, expires_at: int) -> dict[str, Any]:
        """The session object of `session.created` / `session.updated`.

        GA: every field the official session type declares that the simulator keeps, plus the live-only `id`,
        `object` and `expires_at` (REALTIME_PROTOCOL.md); `reasoning` only once the client has set it.
        """
        if self.is_beta:
            return {
                "id": session_id,
                "modalities": ["text", "audio"] if settings.output_modalities == ["audio"] else ["text"],
                "instructions": settings.instructions,
                "voice": settings.voice,
                "input_audio_format": settings.input_format,
                "output_audio_format": settings.output_format,
                "input_audio_transcription": settings.transcription,
                "turn_detection": _beta_turn_detection(settings.turn_detection),
                "tools": settings.tools,
                "tool_choice": settings.tool_choice if isinstance(settings.tool_choice, str) else "required",
                "temperature": settings.temperature,
                "max_response_output_tokens": settings.max_output_tokens,
            }
        session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "expires_at": expires_at,
            "model": settings.model,
            "output_modalities": settings.output_modalities,
            "instructions": settings.instructions,
            "tools": [shown_tool(tool) for tool in settings.tools],
            "tool_choice": settings.tool_choice,
            "max_output_tokens": settings.max_output_tokens,
            "audio": {
                "input": {
                    "format": GA_FORMAT_SHAPES[settings.input_format],
                    "transcription": settings.transcription,
                    "turn_detection": _ga_turn_detection(settings.turn_detection),
                    "noise_reduction": settings.noise_reduction,
                },
                "output": {
                    "format": GA_FORMAT_SHAPES[settings.output_format],
                    "voice": settings.voice,
                    "speed": 1.0,
                },
            },
            "include": settings.include,
            "prompt": settings.prompt,
            "truncation": settings.truncation,
            "tracing": None,
        }
        if settings.reasoning is not None:
            session["reasoning"] = settings.reasoning
        return session

    def item(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item as this dialect shows it: beta items say `object: realtime.item` (live GA items never do), and
        assistant content types differ."""
        if not self.is_beta:
            return item
        if item.get("role") != "assistant":
            return {"object": "realtime.item", **item}
        content = [{**part, "type": _BETA_CONTENT_TYPES.get(part["type"], part["type"])} for part in item["content"]]
        return {"object": "realtime.item", **item, "content": content}

    def item_from_client(self, item: dict[str, Any]) -> dict[str, Any]:
        """A client's item in the neutral (GA) shape."""
        if item.get("role") == "assistant" and item.get("content"):
            content = [
                {**part, "type": _GA_CONTENT_TYPES.get(part.get("type", ""), part.get("type"))}
                for part in item["content"]
                if isinstance(part, dict)
            ]
            return {**item, "content": content}
        return item

    def response(
        self,
        response_id: str,
        settings: SessionSettings,
        *,
        status: str,
        output: list[dict[str, Any]],
        conversation_id: str | None,
        status_details: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The response object of `response.created` / `response.done`."""
        body: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": status_details,
            "output": [self.item(item) for item in output] if self.is_beta else output,
            "conversation_id": conversation_id,
            "max_output_tokens": settings.max_output_tokens,
            "usage": usage,
            "metadata": metadata,
        }
        if self.is_beta:
            body["modalities"] = ["text", "audio"] if settings.output_modalities == ["audio"] else ["text"]
            body["output_audio_format"] = settings.output_format
            body["voice"] = settings.voice
            body["temperature"] = settings.temperature
        else:
            body["output_modalities"] = settings.output_modalities
            body["audio"] = {"output": {"format": GA_FORMAT_SHAPES[settings.output_format], "voice": settings.voice}}
        return body


def _ga_turn_detection(detection: dict[str, Any] | None) -> dict[str, Any] | None:
    """GA `server_vad` always states `idle_timeout_ms` (null: no idle timeout), as the live service does."""
    if detection is None or detection.get("type") != "server_vad":
        return detection
    return {**detection, "idle_timeout_ms": detection.get("idle_timeout_ms")}


def _beta_turn_detection(detection: dict[str, Any] | None) -> dict[str, Any] | None:
    """Beta turn detection has no `idle_timeout_ms`."""
    if detection is None or "idle_timeout_ms" not in detection:
        return detection
    return {key: value for key, value in detection.items() if key != "idle_timeout_ms"}


GA = Dialect("ga")
BETA = Dialect("beta")
