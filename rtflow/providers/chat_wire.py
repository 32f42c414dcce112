"""What Chat Completions sends back: bodies, stream chunks, usage, and error statuses as rtflow errors.

Pure functions and small assemblers over already-received data; the HTTP client stays in `openai_chat`.
A 429's wait comes from `Retry-After`, else from the reset time of the exhausted `x-ratelimit-*` limit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only annotations here: httpx loads when a request is made
    import httpx

from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from rtflow.messages import Usage as TurnUsage
from rtflow.providers.endpoints import SecretKey, redact
from rtflow.providers.ratelimits import pause_from_headers, retry_after_header
from rtflow.providers.tools import PendingCall

__all__ = [
    "ChatReply",
    "StreamedReply",
    "parse_json",
    "reply_from_body",
    "retry_after_seconds",
    "sse_events",
    "status_error",
    "usage_from",
]


class ChatReply:
    """One completion: its text, the function calls it asked for, its usage."""

    def __init__(self, text: str, calls: list[PendingCall], usage: TurnUsage, model: str | None) -> None:
        self.text = text
        self.calls = calls
        self.usage = usage
        self.model = model


class StreamedReply:
    """Assembles a reply from stream chunks (tool call arguments arrive in pieces, by index)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage = TurnUsage()
        self.model: str | None = None

    def absorb(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it carried text."""
        self.model = self.model or chunk.get("model")
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from(chunk["usage"])
        carried_text = False
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.pieces.append(str(delta["content"]))
                carried_text = True
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
        return carried_text

    def finish(self) -> ChatReply:
        calls = [(slot["id"], slot["name"], slot["arguments"]) for _, slot in sorted(self.calls.items())]
        return ChatReply("".join(self.pieces), calls, self.usage, self.model)


def reply_from_body(body: Any, label: str) -> ChatReply:
    """The reply in a non-streamed completion body; ProtocolError when it has none."""
    try:
        message = body["choices"][0]["message"]
        calls = [
            (str(call["id"]), str(call["function"]["name"]), str(call["function"].get("arguments") or ""))
            for call in message.get("tool_calls") or []
        ]
        return ChatReply(str(message.get("content") or ""), calls, usage_from(body.get("usage")), body.get("model"))
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ProtocolError("the completion has no choices[0].message", provider=label) from None


async def sse_events(lines: AsyncIterator[str], label: str) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of a server-sent event stream, up to `[DONE]`."""
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        chunk = parse_json(data.encode(), label)
        if not isinstance(chunk, dict):
            raise ProtocolError("a stream chunk is not a JSON object", provider=label)
        if isinstance(chunk.get("error"), dict):
            raise ServerError(f"the stream failed: {chunk['error'].get('message')}", provider=label)
        yield chunk


def parse_json(content: bytes, label: str) -> Any:
    """`content` as JSON, or a ProtocolError."""
    try:
        return json.loads(content)
    except ValueError:
        raise ProtocolError("the server sent a body that is not JSON", provider=label) from None


def usage_from(raw: Any) -> TurnUsage:
    """Token counts of a Chat `usage` block (zeros when it is missing)."""
    if not isinstance(raw, dict):
        return TurnUsage()
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return TurnUsage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        input_audio_tokens=int(prompt_details.get("audio_tokens") or 0),
        output_audio_tokens=int(completion_details.get("audio_tokens") or 0),
    )


# A 429 says some budget is spent: a budget whose remaining count is not sent is taken to be the spent one.
_SPENT_UNLESS_SAID = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """How long a 429 asks to wait: `Retry-After`, else the reset time of the exhausted `x-ratelimit-*` budget."""
    stated = retry_after_header(response.headers.get("retry-after"))
    if stated is not None:
        return stated
    return pause_from_headers({**_SPENT_UNLESS_SAID, **response.headers})


def status_error(response: httpx.Response, label: str, key: SecretKey | None) -> ProviderError:
    """The rtflow error an HTTP error status means; the server's message is kept, the key redacted."""
    status = response.status_code
    detail = ""
    code: str | None = None
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = json.loads(response.content)["error"]
        detail = str(error.get("message") or "")
        code = str(error["code"]) if error.get("code") else None
    detail = redact(detail, key)[:300]
    suffix = f": {detail}" if detail else ""
    if status == 429:
        retry_after = retry_after_seconds(response)
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        return RateLimitError(
            f"rate limited (HTTP 429){hint}{suffix}", provider=label, status=status, retry_after=retry_after, code=code
        )
    if status in (401, 403):
        source = f" (key from {key.source})" if key else ""
        return AuthenticationError(
            f"the server refused the request (HTTP {status}){source}{suffix}", provider=label, status=status, code=code
        )
    if status >= 500:
        return ServerError(f"the server failed (HTTP {status}){suffix}", provider=label, status=status, code=code)
    return InvalidRequestError(
        f"the request was refused (HTTP {status}){suffix}", provider=label, status=status, code=code
    )
