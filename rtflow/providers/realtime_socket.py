"""The Realtime provider's side of `websockets`: opening a socket, and translating every failure.

`open_socket` connects with rtflow's settings and a redirect policy of its own: websockets follows redirects and
strips only `Authorization` when one leaves the origin, so Azure's `api-key` (and any auth header of the user's)
would reach the other host. Here a redirect within the origin is followed with its headers, and one to another
origin is refused before anything is sent there (`CrossOriginRedirect`). Straight to the server, it opens the TCP
connection itself (a `StampedSocket`) and gives it to websockets (`sock=`, the documented way); websockets cannot
follow a redirect on such a socket, so `open_socket` follows each one on a new connection. Of websockets it uses
`connect`'s arguments, its `process_redirect` hook, `InvalidStatus` and `parse_uri`, alike from 15.0 (the floor)
to 17; how `connect` opens its TCP connection, which changed between them, it leaves alone.

`arrived_at` says when the message `recv` last returned came in: when its last packet reached the machine, as the
kernel noted it (`rtflow.arrival_stamps`; through a proxy or where the kernel gives no note, when the event loop
read it off the socket, before any task got to it). Under load the reading task runs later than that, and the
loop's read too, and every time measured from them (time to first audio, the playback clock a barge-in is placed
on) would be late by as much; a speaker starts playing audio when it arrives.

`translate_errors` is the one place where the library's failures become rtflow errors. Every text from the
server that enters a message (a refusal's body, a close reason, a redirect's location) is redacted first.
websockets is imported by the first connection, never by validating a flow.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rtflow.arrival_stamps import StampedSocket, arrival_perf, open_stamped_socket, stamped_socket_of
from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    RateLimitError,
)
from rtflow.providers.endpoints import (
    USER_AGENT,
    CrossOriginRedirect,
    SecretKey,
    origin_of,
    redact,
    server_text,
    websocket_proxy,
)
from rtflow.providers.ratelimits import DEFAULT_MAX_RETRY_AFTER, retry_after_header, retry_hint

if TYPE_CHECKING:
    import asyncio

    from websockets.asyncio.client import ClientConnection, connect

__all__ = ["MAX_FRAME_BYTES", "arrived_at", "open_socket", "translate_errors"]

MAX_FRAME_BYTES = 2**24
"""The largest frame (message) rtflow reads; a larger one closes the connection with code 1009."""
# A whole response (twenty-odd events) often arrives in one read; websockets pauses reading the socket whenever
# more frames than this are waiting, which would cost two system calls per response at the default of 16.
_MAX_QUEUED_FRAMES = 256
_MAX_REDIRECTS = 10
"""As websockets' own limit."""
_REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
_UNAUTHORIZED_CLOSE_CODES = {3000: "unauthorized", 3003: "forbidden"}
"""Close codes of the IANA registry that mean the credentials were refused; the live service sends 3000."""
_FORBIDDEN_HINT = (
    "the server refused the connection (HTTP 403). Likely causes: the key has no access to this model, "
    "a network or proxy that blocks WebSockets, or an exhausted quota or billing limit"
)
_WIRE_LOG = logging.getLogger("rtflow.providers.realtime.wire")


async def open_socket(url: str, headers: Mapping[str, str], key: SecretKey, *, proxy: bool) -> ClientConnection:
    """Open the socket, following redirects within the origin only.

    Straight to the server (no proxy applies, or `proxy` is False), the connection runs on a `StampedSocket`, whose
    reads carry the kernel's arrival times; through a proxy, websockets opens it. A socket given to websockets
    cannot serve a redirect, so redirects are followed here, each on a socket of its own.
    """
    from websockets.exceptions import SecurityError
    from websockets.uri import parse_uri

    connect = _same_origin_connect()
    for _ in range(_MAX_REDIRECTS + 1):
        target = parse_uri(url)
        through = websocket_proxy(target.host, target.port, secure=target.secure) if proxy else None
        sock = None if through else await open_stamped_socket(target.host, target.port)
        # `sock` only when there is one: websockets' SOCKS path passes a `sock` of its own to create_connection.
        given: dict[str, Any] = {} if sock is None else {"sock": sock}
        try:
            connection = await connect(
                url,
                additional_headers=dict(headers),
                user_agent_header=USER_AGENT,
                compression=None,  # deflate costs ~64 KB of zlib state per socket; events are small JSON
                proxy=through,  # worked out once, above: websockets would read the same settings again
                open_timeout=None,  # the caller's deadline bounds the handshake
                max_size=MAX_FRAME_BYTES,
                max_queue=_MAX_QUEUED_FRAMES,
                logger=_RedactingLogger(_WIRE_LOG, key),
                create_connection=_stamped_connection(),
                **given,
            )
        except BaseException as exc:
            if sock is not None:
                sock.close()  # if websockets' transport has not closed it already
            if not isinstance(exc, _SameOriginRedirect):
                raise
            url = exc.target
        else:
            return connection
    raise SecurityError(f"more than {_MAX_REDIRECTS} redirects")


def arrived_at(socket: ClientConnection) -> float:
    """When the message `socket.recv()` last returned arrived (`time.perf_counter`), for a socket `open_socket`
    opened; now, for any other."""
    arrival = getattr(socket, "last_arrival", None)
    return arrival if isinstance(arrival, float) else time.perf_counter()


@functools.cache
def _stamped_connection() -> type[ClientConnection]:
    from websockets.asyncio.client import ClientConnection
    from websockets.frames import DATA_OPCODES, Frame

    class StampedConnection(ClientConnection):
        """A client connection that notes when each message arrived: when the read that completed it reached the
        machine (`arrival_perf`: the kernel's note, else the time of the read, in the loop's own callback), before
        any task reads the message."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._arrivals: deque[float] = deque()
            self.last_arrival: float | None = None
            self._wire: StampedSocket | None = None
            self._read_arrival = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._wire = stamped_socket_of(transport)

        def data_received(self, data: bytes) -> None:
            # One arrival per read (a whole response often comes in one), never before the read before it: a
            # step of the wall clock must not run the playback back.
            self._read_arrival = max(self._read_arrival, arrival_perf(self._wire))
            super().data_received(data)

        def process_event(self, event: Any) -> None:
            super().process_event(event)
            if isinstance(event, Frame) and event.fin and event.opcode in DATA_OPCODES:
                self._arrivals.append(self._read_arrival)

        async def recv(self, decode: bool | None = None) -> Any:
            message = await super().recv(decode)
            self.last_arrival = self._arrivals.popleft() if self._arrivals else time.perf_counter()
            return message

    return StampedConnection


@functools.cache
def _same_origin_connect() -> type[connect]:
    from websockets.asyncio.client import connect

    class SameOriginConnect(connect):
        """websockets' `connect`, handing every redirect back to `open_socket`: one to another origin as
        `CrossOriginRedirect` (refused before anything is sent there), one within it as `_SameOriginRedirect`."""

        def process_redirect(self, exc: Exception) -> Exception | str:
            target = _redirect_target(exc, self.uri)
            if target is None:
                return super().process_redirect(exc)  # not a redirect: the error itself
            if origin_of(target) != origin_of(self.uri):
                return CrossOriginRedirect(target)
            return _SameOriginRedirect(target)

    return SameOriginConnect


class _SameOriginRedirect(Exception):
    """A redirect within the origin, for `open_socket` to follow on a new socket."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def _redirect_target(exc: Exception, uri: str) -> str | None:
    """Where a refused handshake redirects to, as websockets reads it (a 3xx with a Location); None if it does not."""
    from websockets.exceptions import InvalidStatus

    if not isinstance(exc, InvalidStatus) or exc.response.status_code not in _REDIRECT_STATUSES:
        return None
    location = exc.response.headers.get("Location")
    return urllib.parse.urljoin(uri, location) if location else None


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """websockets' debug log shows handshake headers; this keeps the key out of it."""

    def __init__(self, logger: logging.Logger, key: SecretKey) -> None:
        super().__init__(logger, {})
        self._key = key

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(level, "%s", redact(text, self._key), **kwargs)


@contextlib.contextmanager
def translate_errors(
    label: str,
    current_key: Callable[[], SecretKey | None],
    *,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> Iterator[None]:
    """Turn every websockets (and socket) failure into an rtflow ProviderError, without leaking the key."""
    from websockets.exceptions import (
        ConnectionClosed,
        InvalidHandshake,
        InvalidStatus,
        InvalidURI,
        WebSocketException,
    )

    try:
        yield
    except CrossOriginRedirect as exc:
        raise exc.refusal("the handshake", label, current_key()) from None
    except InvalidStatus as exc:
        raise _refusal(exc, label, current_key(), max_retry_after) from None
    except ConnectionClosed as exc:
        raise _closed(exc, label, current_key()) from None
    except InvalidURI as exc:
        raise InvalidRequestError(f"bad Realtime URL: {server_text(str(exc), current_key())}", provider=label) from None
    except InvalidHandshake as exc:
        detail = server_text(str(exc), current_key()) or type(exc).__name__
        raise ProtocolError(f"the WebSocket handshake failed: {detail}", provider=label) from None
    except WebSocketException as exc:
        raise ProtocolError(f"the WebSocket failed: {type(exc).__name__}", provider=label) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__  # "Multiple exceptions: ..." has no strerror
        raise ProviderConnectionError(f"cannot connect: {reason}", provider=label) from None


def _refusal(exc: Any, label: str, key: SecretKey | None, max_retry_after: float) -> Exception:
    """The error a refused handshake (`InvalidStatus`) means."""
    status: int = exc.response.status_code
    body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
    body = server_text(body, key)
    detail = f": {body}" if body else ""
    if status == 401:
        source = f" (from {key.source})" if key else ""
        return AuthenticationError(
            f"the server refused the API key{source} (HTTP 401){detail}", provider=label, status=status
        )
    if status == 403:
        return AuthenticationError(f"{_FORBIDDEN_HINT}{detail}", provider=label, status=status)
    if status == 429:
        asked = retry_after_header(exc.response.headers.get("Retry-After"))
        retry_after, hint = retry_hint(asked, max_retry_after)
        return RateLimitError(
            f"rate limited at the handshake (HTTP 429){hint}{detail}",
            provider=label,
            status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        return ProviderConnectionError(
            f"the server failed the handshake (HTTP {status}){detail}", provider=label, status=status
        )
    if 300 <= status < 400:
        return InvalidRequestError(
            f"the server redirected the handshake (HTTP {status}) without a Location to follow{detail}",
            provider=label,
            status=status,
        )
    return InvalidRequestError(
        f"the server refused the handshake (HTTP {status}){detail}", provider=label, status=status
    )


def _closed(exc: Any, label: str, key: SecretKey | None) -> Exception:
    """The error a closed connection means: the server's close frame, or the one the client sent."""
    received, sent = exc.rcvd, exc.sent
    if received is None and sent is not None and sent.code == 1009:
        return ProtocolError(
            f"the server sent a frame larger than {MAX_FRAME_BYTES // 2**20} MiB (the client's limit), so the client"
            " closed the connection (code 1009)",
            provider=label,
            code="1009",
        )
    if received is None and sent is not None and sent.code in (1002, 1007):
        reason = server_text(sent.reason, key)
        return ProtocolError(
            f"the server broke the WebSocket protocol ({reason}), so the client closed the connection"
            f" (code {sent.code})",
            provider=label,
            code=str(sent.code),
        )
    code: int = received.code if received is not None else 1006
    reason = server_text(received.reason, key) if received is not None else ""
    said = f" {reason}" if reason else ""
    if code == 4000 or "beta_api_shape_disabled" in reason:
        return InvalidRequestError(
            f"the server rejected the beta protocol (close {code}{said}); use dialect: ga",
            provider=label,
            code="beta_api_shape_disabled",
        )
    if code in _UNAUTHORIZED_CLOSE_CODES:
        source = f" (key from {key.source})" if key else ""
        return AuthenticationError(
            f"the server closed the connection as {_UNAUTHORIZED_CLOSE_CODES[code]} (close {code}{said}){source}",
            provider=label,
            code=str(code),
        )
    return ProviderConnectionError(f"the connection closed (code {code}{said})", provider=label, code=str(code))
