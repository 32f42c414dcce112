"""When data came in off the network: the kernel's receive time of each read, not when a busy event loop got to it.

Under load an event loop reads a socket some milliseconds after its data arrived: the loop was running other
callbacks. A time taken in the read's own callback is late by as much, and so is every measure built on it (time
to first audio, the playback clock a barge-in is placed on, the moment a simulator saw a cancel). The kernel knows
better: with `SO_TIMESTAMPNS` it notes when each packet arrived and hands that time over with the data.

A `StampedSocket` asks for those notes and keeps the one of its latest read (`arrival`, Unix seconds, or None when
that read came without one); asyncio's selector transports read through `recv` and `recv_into`, so the protocol
on top of it learns, in its own `data_received`, when that data really arrived. `stamped_socket_of(transport)`
finds the socket behind a transport (TLS included). `open_stamped_socket` connects one; a listening
`StampedSocket` accepts `StampedSocket`s.

The note is per read, not per packet: packets that waited in the socket together are merged by the kernel, which
keeps the newest one's time. A read's messages all get that time, so a message that waited behind later ones is
dated to their arrival: this is the one error left, and it is at most how late the loop read.

Where the kernel gives nothing (another system than Linux, a loop such as uvloop that reads the descriptor
itself, the first packets before the kernel has switched stamping on), `arrival` stays None and callers use the
time of the read, as before.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["StampedSocket", "arrival_perf", "arrival_wall", "open_stamped_socket", "stamped_socket_of"]

# Python's socket module may not name the option (3.11's does not). Its number is then that of Linux's generic
# socket options, which the common machines use; the few that number it otherwise (SPARC, Alpha, PA-RISC) go
# without stamps.
_GENERIC_SOCKET_OPTIONS = {"x86_64", "i386", "i686", "aarch64", "armv7l", "riscv64", "ppc64le", "s390x"}
_SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" and os.uname().machine in _GENERIC_SOCKET_OPTIONS else None
)
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds and nanoseconds, each a C long
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if _SO_TIMESTAMPNS is not None else 0
_STALE_AFTER_S = 10.0
"""An arrival older than this, seen from the read, is taken for a step of the wall clock (the kernel's stamp and
`time.time` are the same clock, which NTP may step), not for a loop that left a socket unread for that long."""

_by_descriptor: weakref.WeakValueDictionary[int, StampedSocket] = weakref.WeakValueDictionary()


class StampedSocket(socket.socket):
    """A socket whose reads keep the kernel's arrival time of their data (`arrival`)."""

    __slots__ = ("arrival",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrival: float | None = None
        if _SO_TIMESTAMPNS is not None and self.type == socket.SOCK_STREAM:
            with contextlib.suppress(OSError):  # a kernel without it: plain reads, no stamps
                self.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        _by_descriptor[self.fileno()] = self

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if _SO_TIMESTAMPNS is None:  # no notes to read (nor recvmsg, on Windows)
            return super().recv(bufsize, flags)
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY_BYTES, flags)
        self.arrival = _stamp(ancillary)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if _SO_TIMESTAMPNS is None:
            return super().recv_into(buffer, nbytes, flags)
        view = memoryview(buffer).cast("B")
        if not 0 <= nbytes <= len(view):
            raise ValueError(
                "buffer too small for requested bytes" if nbytes > 0 else "negative buffersize in recv_into"
            )
        read, ancillary, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], _ANCILLARY_BYTES, flags)
        self.arrival = _stamp(ancillary)
        return read

    def accept(self) -> tuple[socket.socket, Any]:
        """`socket.accept`, giving a `StampedSocket` (the standard one makes a plain socket whatever its class)."""
        descriptor, address = self._accept()  # type: ignore[attr-defined]
        accepted = StampedSocket(self.family, self.type, self.proto, fileno=descriptor)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            accepted.setblocking(True)  # as socket.accept does
        return accepted, address


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return None


def stamped_socket_of(transport: asyncio.BaseTransport) -> StampedSocket | None:
    """The `StampedSocket` a transport reads from (through TLS too), or None for any other."""
    wrapper = transport.get_extra_info("socket")
    if wrapper is None:
        return None
    try:
        descriptor = wrapper.fileno()
    except OSError:
        return None
    sock = _by_descriptor.get(descriptor)
    # A closed socket's descriptor may already belong to a new plain socket.
    return sock if sock is not None and sock.fileno() == descriptor else None


def arrival_wall(sock: StampedSocket | None) -> float:
    """When the data of `sock`'s latest read arrived, in Unix seconds (`time.time`); now when that is unknown."""
    now = time.time()
    return now - _age(sock, now)


def arrival_perf(sock: StampedSocket | None) -> float:
    """`arrival_wall` on the `time.perf_counter` clock."""
    return time.perf_counter() - _age(sock, time.time())


def _age(sock: StampedSocket | None, now: float) -> float:
    """How long before `now` (Unix seconds) the latest read's data arrived: 0 when that is unknown, or when the
    stamp is in the future or older than `_STALE_AFTER_S` (a step of the wall clock, not an arrival)."""
    arrival = sock.arrival if sock is not None else None
    if arrival is None:
        return 0.0
    age = now - arrival
    return age if 0.0 <= age < _STALE_AFTER_S else 0.0


async def open_stamped_socket(host: str, port: int) -> StampedSocket:
    """A connected, non-blocking `StampedSocket` to host:port, found and connected as `loop.create_connection`
    does it: each address in `getaddrinfo`'s order (an IP address is not looked up), and the same error when
    every one fails."""
    import asyncio  # not at import: validating a flow never opens a socket

    loop = asyncio.get_running_loop()
    # IPPROTO_TCP asked for, so that each address's proto says TCP: asyncio sets TCP_NODELAY only on those.
    wanted = {"type": socket.SOCK_STREAM, "proto": socket.IPPROTO_TCP}
    try:  # an IP address needs no resolver, and a resolver call costs a thread hop
        addresses = socket.getaddrinfo(host, port, flags=socket.AI_NUMERICHOST, **wanted)
    except socket.gaierror:
        addresses = await loop.getaddrinfo(host, port, **wanted)
    errors: list[OSError] = []
    try:
        for family, kind, proto, _, address in addresses:
            sock = None
            try:
                sock = StampedSocket(family, kind, proto)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                errors.append(exc)
                continue
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            return sock
        if not errors:
            raise OSError(f"getaddrinfo() returned an empty list for {host}")
        # As loop.create_connection: one error, or all alike, raised as it is; else one error naming them all.
        if len(errors) == 1 or all(str(exc) == str(errors[0]) for exc in errors):
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")
    finally:
        errors = []  # the raised error's traceback holds this frame: no cycle through the list
