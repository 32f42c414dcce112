"""Serve the viewer with uvicorn on a socket bound here, so port 0 can pick a free port and the address be known
(and printed) before the first request.

The socket listens before uvicorn starts: a browser that connects as soon as the address is printed waits in
the socket's queue rather than being refused.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import uvicorn

from rtflow.viewer.app import create_app
from rtflow.viewer.host_check import allowed_hosts_for

__all__ = ["bind", "serve", "url_of"]

_SHUTDOWN_GRACE_S = 1
"""How long Ctrl-C waits for requests in flight: a poll or a report, both short."""


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else socket.AF_INET
    except ValueError:  # a name such as `localhost`: the first address it resolves to decides
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (port 0: a free one). `OSError` when it cannot be had."""
    family = _family(host)
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host.strip("[]"), port))
        listener.listen(128)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


def url_of(listener: socket.socket) -> str:
    """The address a browser opens for `listener`."""
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if listener.family == socket.AF_INET6 else host
    return f"http://{shown}:{port}/"


def serve(db_path: Path, listener: socket.socket, host: str) -> None:
    """Serve the viewer over `db_path` on `listener`, bound to `host` as the user named it, until SIGINT or
    SIGTERM (uvicorn raises the signal again once it has stopped: Ctrl-C ends here as `KeyboardInterrupt`)."""
    allowed = allowed_hosts_for(host)
    if allowed is not None:  # the name the user gave and the address it resolved to both reach the viewer
        allowed |= {str(listener.getsockname()[0]).lower()}
    config = uvicorn.Config(
        create_app(db_path, allowed_hosts=allowed),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[listener])
