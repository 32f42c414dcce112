"""What the Realtime server's events mean: a finished response's outcome, `error` events, usage.

Pure functions over decoded events, shared by every session; the WebSocket itself stays in `openai_realtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rtflow.errors import (
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ResponseFailedError,
    ServerError,
)
from rtflow.messages import Usage
from rtflow.providers.tools import PendingCall

__all__ = ["ResponseResult", "error_from_event", "finish_response", "usage_from"]


@dataclass
class ResponseResult:
    """What one `response.create` produced."""

    text: str = ""
    calls: list[PendingCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def finish_response(event: dict[str, Any], streamed_text: str, label: str) -> ResponseResult:
    """The outcome of `response.done`, or the error its status means."""
    response = event.get("response")
    if not isinstance(response, dict):
        raise ProtocolError("response.done without a response", provider=label)
    status = response.get("status")
    if status in ("failed", "incomplete", "cancelled"):
        raise _failed_response(response, str(status), label)
    result = ResponseResult(text=streamed_text, usage=usage_from(response.get("usage")))
    output_text: list[str] = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            result.calls.append((str(item.get("call_id")), str(item.get("name")), str(item.get("arguments") or "")))
        elif item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    output_text.append(str(part.get("text") or part.get("transcript") or ""))
    if not result.text:
        # Servers that send no deltas still list the text in the final output.
        result.text = "".join(output_text)
    return result


def _failed_response(response: dict[str, Any], status: str, label: str) -> ProviderError:
    details = response.get("status_details") or {}
    reason = details.get("reason") if isinstance(details, dict) else None
    error = details.get("error") if isinstance(details, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    message = f"response {status}" + (f" ({reason})" if reason else "")
    if error.get("message"):
        message += f": {error['message']}"
    if "rate_limit" in f"{code} {error.get('type')}":
        return RateLimitError(message, provider=label, code=str(code) if code else None)
    return ResponseFailedError(
        message, response_status=status, reason=reason, provider=label, code=str(code) if code else None
    )


def error_from_event(event: dict[str, Any], label: str) -> ProviderError:
    """The rtflow error an `error` event means (by its type and code)."""
    error = event.get("error")
    error = error if isinstance(error, dict) else {}
    error_type = str(error.get("type") or "")
    code = str(error["code"]) if error.get("code") else None
    message = f"{error_type or 'error'}: {error.get('message') or 'no message'}"
    if code:
        message += f" (code {code})"
    if code == "session_expired":
        return ProviderConnectionError(message, provider=label, code=code)
    if "rate_limit" in f"{code} {error_type}":
        return RateLimitError(message, provider=label, code=code)
    if error_type == "server_error":
        return ServerError(message, provider=label, code=code)
    return InvalidRequestError(message, provider=label, code=code)


def usage_from(raw: Any) -> Usage:
    """Token counts of a `response.done` usage block (zeros when it is missing)."""
    if not isinstance(raw, dict):
        return Usage()
    input_details = raw.get("input_token_details") or {}
    output_details = raw.get("output_token_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        cached_tokens=int(input_details.get("cached_tokens") or 0),
        input_audio_tokens=int(input_details.get("audio_tokens") or 0),
        output_audio_tokens=int(output_details.get("audio_tokens") or 0),
    )
