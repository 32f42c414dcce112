"""Where a provider connects and how it authenticates: base URL, API key and headers.

Shared by the Realtime and Chat providers. The base URL comes from config `api_base_url` (or promptfoo's
`api_host`), else `OPENAI_BASE_URL`, else the public API. The key comes from config `api_key`, else the
environment variable named by `api_key_env`, else `OPENAI_API_KEY`. Azure endpoints (`*.openai.azure.com`,
or `azure: true`) authenticate with an `api-key` header instead of a bearer token.

Only the *name* of the variable a key came from ever appears in messages; the key itself is kept in a
`SecretKey` whose repr hides it. Whatever a server sends back (error messages, close reasons, bodies, a redirect's
`Location`) goes through `server_text` before it becomes part of a message: the key and anything shaped like a key
are replaced, control characters dropped, and the text shortened. Authentication is only ever sent to the origin
it was configured for: a redirect elsewhere raises `CrossOriginRedirect`, which each provider reports as a refusal.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from rtflow._version import __version__
from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeoutError,
)
from rtflow.log import redact as redact_known_secrets

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "CrossOriginRedirect",
    "SecretKey",
    "auth_headers",
    "environment_proxy",
    "is_azure",
    "is_loopback",
    "origin_of",
    "pooled_http_client",
    "realtime_url",
    "redact",
    "resolve_base_url",
    "resolve_key",
    "server_text",
    "translated_http_errors",
    "websocket_proxy",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
USER_AGENT = f"rtflow/{__version__}"


@dataclass(frozen=True)
class SecretKey:
    """An API key and where it came from. `repr` and `str` never show the value."""

    value: str
    source: str
    """`config api_key` or `$NAME`."""

    def __repr__(self) -> str:
        return f"SecretKey(source={self.source!r})"

    __str__ = __repr__


def resolve_base_url(api_base_url: str | None, api_host: str | None = None) -> str:
    """The HTTP(S) base URL, without a trailing slash."""
    if api_base_url:
        return api_base_url.rstrip("/")
    if api_host:
        return f"https://{api_host.strip('/')}/v1"
    return (os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def resolve_key(api_key: str | None, api_key_env: str | None, provider_label: str) -> SecretKey:
    """The API key, or an AuthenticationError naming the environment variable to set (never a value)."""
    if api_key:
        return SecretKey(api_key, "config api_key")
    env_name = api_key_env or "OPENAI_API_KEY"
    value = os.environ.get(env_name)
    if value:
        return SecretKey(value, f"${env_name}")
    raise AuthenticationError(
        f"no API key for provider {provider_label!r}: set the environment variable {env_name}"
        " (or config api_key_env to name another variable)",
        provider=provider_label,
        retryable=False,
    )


def is_azure(base_url: str, azure_flag: bool | None = None) -> bool:
    """Whether the endpoint is Azure OpenAI (by flag, else by host name)."""
    if azure_flag is not None:
        return azure_flag
    host = urlsplit(base_url).hostname or ""
    return host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com")


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine (the simulator): such traffic never goes through a proxy."""
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def auth_headers(key: SecretKey, *, azure: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Authentication, User-Agent and the user's extra headers (which win on a clash)."""
    headers = {"User-Agent": USER_AGENT}
    if azure:
        headers["api-key"] = key.value
    else:
        headers["Authorization"] = f"Bearer {key.value}"
    headers.update(extra or {})
    return headers


def realtime_url(
    base_url: str,
    model: str,
    *,
    azure: bool = False,
    api_version: str | None = None,
    deployment: str | None = None,
) -> str:
    """The WebSocket URL of the Realtime endpoint for `model`.

    `http` becomes `ws` and `https` becomes `wss`; a query string already on the base URL is kept. Azure's
    preview form (`api_version` given) is `.../openai/realtime?api-version=V&deployment=D`; its GA form is
    the ordinary `.../openai/v1/realtime?model=D`.
    """
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    query: list[tuple[str, str]] = []
    if azure and api_version:
        # Preview Azure: the base is the resource root (optionally with /openai); the path is fixed.
        if path.endswith("/v1"):
            path = path[: -len("/v1")]
        if not path.endswith("/openai"):
            path += "/openai"
        path += "/realtime"
        query = [("api-version", api_version), ("deployment", deployment or model)]
    else:
        path += "/realtime"
        query = [("model", deployment or model)]
    existing = parts.query
    encoded = urlencode(query)
    full_query = f"{existing}&{encoded}" if existing else encoded
    return urlunsplit((scheme, parts.netloc, path, full_query, ""))


def redact(text: str, key: SecretKey | None) -> str:
    """`text` with the key's value replaced, for messages built from anything that might echo it."""
    if key is None or not key.value:
        return text
    return text.replace(key.value, "***")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SERVER_TEXT_LIMIT = 300


def server_text(text: str, key: SecretKey | None, *, limit: int = _SERVER_TEXT_LIMIT) -> str:
    """Text a server sent, fit for a message: the key (and anything key-shaped) replaced, control characters
    dropped, newlines flattened, and at most `limit` characters.

    Redaction comes before shortening, so a key cut in half by the limit cannot slip through as a fragment.
    """
    cleaned = redact_known_secrets(redact(text, key))
    cleaned = _CONTROL.sub("", cleaned.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in; `ws` counts as `http` and `wss` as `https`."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return (scheme, (parts.hostname or "").lower(), port)


class CrossOriginRedirect(Exception):
    """A server redirected a request that carries the API key to another origin; it was not followed.

    Raised inside a transport's redirect handling; the provider raises `refusal()` (an InvalidRequestError) for it.
    `location` is the server's text: pass it through `server_text` before showing it.
    """

    def __init__(self, location: str) -> None:
        super().__init__("redirect to another origin")
        self.location = location

    def refusal(self, what: str, label: str, key: SecretKey | None) -> InvalidRequestError:
        """The error a provider raises for it: `what` was redirected ("the request", "the handshake")."""
        location = server_text(self.location, key, limit=200)
        return InvalidRequestError(
            f"the server redirected {what} to another origin ({location}); rtflow sends the API key only to the"
            " origin it is configured for: set api_base_url to the new address if you trust it",
            provider=label,
            code="cross_origin_redirect",
        )


def pooled_http_client(
    url: str, headers: Mapping[str, str], timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    """The pooled HTTP client of a provider that calls `url` (Chat Completions, speech): auth headers that never
    leave `url`'s origin (checked before every request httpx sends, redirects included), proxies from the
    environment (`environment_proxy`) but never for loopback or an injected transport, kept-alive connections in
    a `SplitPool`, and no pool limit of httpx's own: the run's own limits bound how many requests are in flight."""
    import httpx

    from rtflow.providers.http_pool import SplitPool

    endpoint_origin = origin_of(url)
    trust_env = transport is None and not is_loopback(url)

    async def same_origin_only(request: httpx.Request) -> None:
        if origin_of(str(request.url)) != endpoint_origin:
            raise CrossOriginRedirect(str(request.url))

    if transport is None:
        transport = SplitPool(trust_env=trust_env, proxy=environment_proxy(url) if trust_env else None)
    return httpx.AsyncClient(
        headers=dict(headers),
        timeout=timeout,
        transport=transport,
        trust_env=trust_env,
        follow_redirects=True,
        event_hooks={"request": [same_origin_only]},
    )


def environment_proxy(url: str) -> str | None:
    """The proxy the `*_PROXY` variables name for `url` (the scheme's own, else `ALL_PROXY`), or None when there is
    none or `NO_PROXY` names its host. Worked out once per client: a client talks to its endpoint's origin only.
    (httpx reads these variables itself only for a client without a transport of its own.)"""
    import urllib.request

    scheme, host, _ = origin_of(url)
    # The variables only, as httpx's own `trust_env` reads them: not the system settings (macOS, Windows)
    # that `getproxies` would fall back to.
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    # NO_PROXY as urllib reads it (typeshed leaves proxy_bypass_environment out)
    if not proxy or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def websocket_proxy(host: str, port: int, *, secure: bool) -> str | None:
    """The proxy websockets would take to a WebSocket server at host:port, by its own rule (websockets' `get_proxy`,
    which moved between its versions): the proxy settings (the `*_PROXY` variables, else the system's), a SOCKS
    proxy first, then the HTTPS proxy, then (for ws://) the HTTP one; None when there is none or it is bypassed."""
    import urllib.request

    if urllib.request.proxy_bypass(f"{host}:{port}"):
        return None
    proxies = urllib.request.getproxies()
    for scheme in ("wss", "socks", "https") if secure else ("ws", "socks", "https", "http"):
        proxy = proxies.get(scheme)
        if proxy is not None:
            # As websockets reads it: the system's SOCKS setting comes as an http:// address.
            return "socks5h://" + proxy[7:] if scheme == "socks" and proxy.startswith("http://") else proxy
    return None


@contextlib.contextmanager
def translated_http_errors(
    label: str, what: str, timeout: float, timeout_key: str, current_key: Callable[[], SecretKey | None]
) -> Iterator[None]:
    """Turn every httpx failure of a `pooled_http_client` request (`what`: "the request", "the speech request")
    into an rtflow ProviderError, without leaking the key. A timeout names its length and the config key that
    sets it: a bare number there is milliseconds, and `request_timeout: 60` times out after 0.06 s."""
    import httpx

    try:
        yield
    except CrossOriginRedirect as exc:
        raise exc.refusal(what, label, current_key()) from None
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(
            f"{what} waited longer than {timeout:g} s ({timeout_key}) on the server ({type(exc).__name__})",
            provider=label,
        ) from None
    except httpx.DecodingError:
        raise ProtocolError("the response body could not be decoded", provider=label) from None
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            f"the connection failed: {server_text(str(exc), current_key()) or type(exc).__name__}", provider=label
        ) from None
    except httpx.HTTPError as exc:
        raise ProviderConnectionError(
            f"the request failed: {server_text(str(exc), current_key()) or type(exc).__name__}", provider=label
        ) from None
