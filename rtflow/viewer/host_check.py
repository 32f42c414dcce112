"""Answer only requests addressed to the viewer by a name it was bound to.

A page on any web site can make the browser send requests to `127.0.0.1:8700` under a name the site controls
(DNS rebinding), and then read the answers as its own. Such a request carries the site's name in its `Host`
header; refusing every name but the loopback ones (or the host the viewer was bound to) keeps the run store's
transcripts to the people at this machine.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HostCheck", "allowed_hosts_for"]

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def allowed_hosts_for(bind_host: str) -> frozenset[str] | None:
    """The `Host` names to answer when bound to `bind_host`; None (any name) when bound to every address,
    where the machine's own names are not known."""
    host = bind_host.strip("[]").lower()
    if host in _ANY_ADDRESS:
        return None
    return _LOOPBACK_NAMES | {host}


def _host_name(header: str) -> str | None:
    try:
        name = urlsplit(f"//{header}").hostname  # takes `[::1]:8700` and `localhost:8700` apart alike
    except ValueError:
        return None
    return name.lower() if name else None


class HostCheck:
    """ASGI middleware: a request whose `Host` is not in `allowed` gets 400 and never reaches the app."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            name = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if name not in self.allowed:
                response = PlainTextResponse("rtflow view answers only to the host names it was bound to", 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
