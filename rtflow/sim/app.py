"""The ASGI application: Realtime WebSocket, Chat Completions and text to speech on one port, OpenAI and Azure paths.

GPT-Live's WebSocket (`/v1/live/sessions`, where `client.live.connect()` goes) is served by `rtflow.sim.live`.

WebSocket scopes go straight to the Realtime handler (no middleware per frame, which matters at 1,000+
sessions); HTTP goes through a small starlette app. The raw ASGI `send` is kept so that a `close:1006` fault can
abort the TCP transport, the only way to drop a connection without a close frame.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rtflow.sim.chat import chat_completions, error_body, openai_error
from rtflow.sim.dialects import BETA, GA
from rtflow.sim.live import LIVE_PATHS, serve_live
from rtflow.sim.realtime import RealtimeConnection, refuse_connection
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.speech import speech
from rtflow.sim.transcription_session import MODEL_ON_TRANSCRIPTION_URL
from rtflow.sim.uvicorn_glue import SansIOWebSocket, abort_connection

__all__ = ["build_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REALTIME_PATHS = frozenset({"/v1/realtime", "/openai/v1/realtime", "/openai/realtime"})


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}


def _api_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return headers.get("api-key") or None


def build_app(runtime: SimRuntime) -> ASGIApp:
    """The simulator's ASGI app for `runtime`."""

    async def chat(request: Request) -> Response:
        abort = functools.partial(abort_connection, request.scope.get("rtflow.raw_send"))
        return await chat_completions(request, runtime, _api_key(_headers(request.scope)), abort)

    async def text_to_speech(request: Request) -> Response:
        abort = functools.partial(abort_connection, request.scope.get("rtflow.raw_send"))
        return await speech(request, runtime, _api_key(_headers(request.scope)), abort)

    async def not_found(request: Request) -> Response:
        return openai_error(
            404, f"Unknown request URL: {request.method} {request.url.path}.", "invalid_request_error", "unknown_url"
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "open_sessions": runtime.open_sessions})

    http_app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/openai/v1/chat/completions", chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
            Route("/v1/audio/speech", text_to_speech, methods=["POST"]),
            Route("/openai/v1/audio/speech", text_to_speech, methods=["POST"]),
            Route("/openai/deployments/{deployment}/audio/speech", text_to_speech, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await _realtime(runtime, scope, receive, send)
            return
        scope["rtflow.raw_send"] = send
        await http_app(scope, receive, send)

    return app


async def _deny(
    send: Send,
    status: int,
    message: str,
    error_type: str,
    code: str | None,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps(error_body(message, error_type, code)).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra_headers],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _realtime(runtime: SimRuntime, scope: Scope, receive: Receive, send: Send) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    sansio = SansIOWebSocket.behind(send) if runtime.log.enabled else None
    if sansio is not None:  # the log's `in` times are when each event reached the machine
        sansio.stamp_arrivals()
    await runtime.latency.connect()
    path = scope["path"].rstrip("/")
    query = {name: values[0] for name, values in parse_qs(scope.get("query_string", b"").decode()).items()}
    if path in LIVE_PATHS:
        await serve_live(runtime, _api_key(_headers(scope)), path, receive, send)
        return
    if path not in REALTIME_PATHS:
        await _deny(send, 404, f"Unknown WebSocket path {path}.", "invalid_request_error", "unknown_url")
        return
    model = query.get("model") or query.get("deployment") or ""
    headers = _headers(scope)
    fault = runtime.faults.pick_handshake(model)
    expire_after = None
    if fault is not None and fault.kind == "status":
        extra = [(b"retry-after", f"{fault.retry_after:g}".encode())] if fault.status == 429 else []
        await _deny(
            send,
            fault.status,
            f"Simulated failure with status {fault.status}.",
            "server_error" if fault.status >= 500 else "invalid_request_error",
            "rate_limit_exceeded" if fault.status == 429 else None,
            extra,
        )
        return
    if fault is not None and fault.kind == "session_expired":
        expire_after = fault.after_s
    dialect = BETA if headers.get("openai-beta", "").startswith("realtime=v1") else GA
    # Only GA has transcription sessions opened by intent; beta servers had their own `transcription_session.*`.
    transcription_only = query.get("intent") == "transcription" and not dialect.is_beta
    await send({"type": "websocket.accept"})
    conn_id = runtime.next_connection_id("realtime")
    if runtime.log.enabled:
        runtime.log.record(
            conn_id, "in", "realtime", "<connect>", {"path": path, "model": model, "dialect": dialect.name}
        )
    refusal = _refusal(runtime, headers, model, dialect.is_beta, transcription_only)
    if refusal is not None:
        await refuse_connection(runtime, send, conn_id, *refusal)
        return
    connection = RealtimeConnection(runtime, send, receive, dialect, model, conn_id, transcription_only)
    await connection.serve(expire_after)


_KEY_HELP = "You can find your API key at https://platform.openai.com/account/api-keys."


def _refusal(
    runtime: SimRuntime, headers: dict[str, str], model: str, beta: bool, transcription_only: bool = False
) -> tuple[str, str, int] | None:
    """Why the live service would refuse this upgraded socket: (error code, message, close code), or None.

    Live, a bad key or a missing or unknown model is not refused at the handshake: the upgrade succeeds, an
    `error` event follows, then close 3000. A GA-only service refuses the beta shape the same way with close 4000.
    A transcription socket (`?intent=transcription`) takes no model at all: its model is the transcription model
    named in `session.update`. The key is never echoed.
    """
    key_problem = runtime.key_error(_api_key(headers))
    if key_problem == "missing_api_key":
        return "invalid_api_key", f"You didn't provide an API key. {_KEY_HELP}", 3000
    if key_problem is not None:
        return "invalid_api_key", f"Incorrect API key provided. {_KEY_HELP}", 3000
    if transcription_only:
        return ("invalid_model", MODEL_ON_TRANSCRIPTION_URL, 3000) if model else None
    if not model:
        return "model_not_found", "You must provide a model parameter.", 3000
    known = runtime.config.models
    if known is not None and model not in known:
        return "model_not_found", f"The model `{model}` does not exist or you do not have access to it.", 3000
    if beta and runtime.config.refuse_beta:
        return (
            "beta_api_shape_disabled",
            "The beta Realtime API shape (OpenAI-Beta: realtime=v1) is no longer supported; use the GA interface.",
            4000,
        )
    return None
