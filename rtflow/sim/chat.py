"""`POST /v1/chat/completions`: the same deterministic model, in the Chat Completions shape.

Messages are converted to the Realtime item shape the model reads: `system`/`developer` messages count towards
the instructions fingerprint, assistant `tool_calls` become `function_call` items and `tool` messages become
`function_call_output` items, so a conversation gets the same reply on either endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rtflow.sim.images import chat_image_part
from rtflow.sim.model import ModelReply, respond
from rtflow.sim.runtime import SimRuntime

__all__ = ["chat_completions", "error_body", "fault_response", "key_refusal", "openai_error"]


def error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """The body OpenAI sends with an HTTP error (a refused handshake included)."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_error(
    status: int, message: str, error_type: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error response with the body shape OpenAI uses."""
    return JSONResponse(error_body(message, error_type, code), status_code=status, headers=headers)


def key_refusal(runtime: SimRuntime, key: str | None) -> Response | None:
    """The 401 OpenAI answers an HTTP request whose key is missing or refused, or None when the key is accepted.

    Shared by every HTTP endpoint so that Chat and speech refuse keys in the same words.
    """
    key_problem = runtime.key_error(key)
    if key_problem == "missing_api_key":
        return openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth.",
            "invalid_request_error",
            None,
        )
    if key_problem is not None:
        return openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def to_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as Realtime-shaped items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": _text(message.get("content")),
                }
            )
            continue
        text = _text(message.get("content"))
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        images = [image for part in parts if isinstance(part, dict) and (image := chat_image_part(part)) is not None]
        # An assistant message is dropped only when it is nothing but tool calls: an empty line still counts
        # as a turn of its speaker (the caller rule counts them).
        if text or role != "assistant" or not message.get("tool_calls"):
            items.append({"type": "message", "role": role, "content": [{"type": "input_text", "text": text}, *images]})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments", ""),
                }
            )
    return items


def _tools(raw: Any) -> list[dict[str, Any]]:
    tools = []
    for tool in raw or ():
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            tools.append(tool["function"])
    return tools


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {"type": "function", "name": (raw.get("function") or {}).get("name")}
    return raw or "auto"


async def chat_completions(
    request: Request, runtime: SimRuntime, key: str | None, abort: Callable[[], object]
) -> Response:
    """Answer one Chat Completions request."""
    conn_id = runtime.next_connection_id("chat")
    refusal = key_refusal(runtime, key)
    if refusal is not None:
        return refusal
    try:
        body = json.loads(await request.body())
    except ValueError:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
        return openai_error(400, "'model' and 'messages' are required.", "invalid_request_error", None)
    log = runtime.log if runtime.log.enabled else None
    if log is not None:
        log.record(conn_id, "in", "chat", "chat.completions.request", body)
    await runtime.latency.connect()
    model = str(body["model"])
    items = to_items([m for m in body["messages"] if isinstance(m, dict)])
    tools, tool_choice = _tools(body.get("tools")), _tool_choice(body.get("tool_choice"))
    parallel = body.get("parallel_tool_calls") is not False
    reply = respond(None, items, tools, tool_choice, runtime.rules, parallel_tools=parallel)
    fault = runtime.faults.pick_response("chat", model, reply.last_user_text)
    if fault is not None:
        failure = await fault_response(fault.kind, fault.status, fault.retry_after)
        if failure is not None:
            if log is not None:
                log.record(conn_id, "out", "chat", f"http.{failure.status_code}", fault.kind)
            return failure
    completion_id = f"chatcmpl-{conn_id}"
    stream = bool(body.get("stream"))
    if stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        malformed = fault is not None and fault.kind == "malformed"
        drop = fault is not None and fault.kind == "close"
        chunks = _stream(
            runtime, conn_id, completion_id, model, reply, include_usage, malformed, abort if drop else None
        )
        return StreamingResponse(chunks, media_type="text/event-stream")
    await runtime.latency.first_delta()
    if fault is not None and fault.kind == "close":
        abort()
        await anyio.sleep_forever()
    completion = _completion(completion_id, model, reply)
    if log is not None:
        log.record(conn_id, "out", "chat", "chat.completion", completion)
    if fault is not None and fault.kind == "malformed":
        return Response('{"id": "' + completion_id + '", "choices": [', media_type="application/json")
    return JSONResponse(completion)


async def fault_response(kind: str, status: int, retry_after: float) -> Response | None:
    """The HTTP answer of a fault that replaces the whole response (None for the kinds that act mid-response).

    `stall` never returns: the request hangs until the client gives up.
    """
    if kind == "status":
        headers = {"retry-after": f"{retry_after:g}"} if status == 429 else None
        error_type = {401: "invalid_request_error", 403: "invalid_request_error", 429: "requests"}.get(
            status, "server_error"
        )
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return openai_error(status, f"Simulated failure with status {status}.", error_type, code, headers)
    if kind == "rate_limited":
        return openai_error(
            429,
            f"Rate limit reached for requests. Please try again in {retry_after:g}s.",
            "requests",
            "rate_limit_exceeded",
            {"retry-after": f"{retry_after:g}"},
        )
    if kind == "server_error":
        return openai_error(
            500, "The server had an error while processing your request. Sorry about that!", "server_error", None
        )
    if kind == "stall":
        await anyio.sleep_forever()
    return None


def _usage(reply: ModelReply) -> dict[str, int]:
    completion_tokens = reply.output_tokens
    return {
        "prompt_tokens": reply.input_tokens + reply.image_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": reply.input_tokens + reply.image_tokens + completion_tokens,
    }


def _tool_calls(completion_id: str, reply: ModelReply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{completion_id}_{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for index, call in enumerate(reply.calls)
    ]


def _completion(completion_id: str, model: str, reply: ModelReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.calls:
        message["tool_calls"] = _tool_calls(completion_id, reply)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if reply.calls else "stop"}
        ],
        "usage": _usage(reply),
    }


async def _stream(
    runtime: SimRuntime,
    conn_id: str,
    completion_id: str,
    model: str,
    reply: ModelReply,
    include_usage: bool,
    malformed: bool,
    drop: Callable[[], object] | None,
) -> AsyncIterator[str]:
    created = int(time.time())
    log = runtime.log if runtime.log.enabled else None

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True) -> str:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        }
        if include_usage:
            body["usage"] = usage
        if log is not None:
            log.record(conn_id, "out", "chat", "chat.completion.chunk", body)
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    await runtime.latency.first_delta()
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if malformed:
        yield 'data: {"id": "unterminated\n\n'
    if reply.text:
        words = reply.text.split(" ")
        for position, word in enumerate(words):
            if position:
                await runtime.latency.per_delta()
            yield chunk({"content": word if position == len(words) - 1 else word + " "})
            if drop is not None:
                # Drop the TCP connection without finishing the body, as a dying proxy would.
                drop()
                await anyio.sleep_forever()
    for index, call in enumerate(_tool_calls(completion_id, reply)):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, "tool_calls" if reply.calls else "stop")
    if include_usage:
        yield chunk({}, usage=_usage(reply), choices=False)
    yield "data: [DONE]\n\n"
