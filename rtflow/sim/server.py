"""`SimServer`: the simulator served by uvicorn, in-process, on loopback."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup

from rtflow.arrival_stamps import StampedSocket
from rtflow.errors import SimulatorError
from rtflow.gc_pause import steady_heap
from rtflow.sim.app import build_app
from rtflow.sim.config import SimConfig
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.server_log import forwarding_server_logs
from rtflow.sim.uvicorn_glue import WEBSOCKET_PROTOCOL, EmbeddedServer

__all__ = ["SimServer"]


class SimServer:
    """`async with SimServer(SimConfig()) as sim:` serves until the block ends.

    `sim.port`, `sim.http_base_url` (`http://127.0.0.1:PORT/v1`), `sim.ws_base_url` (`ws://127.0.0.1:PORT/v1`);
    `sim.events` holds every event in and out when `record_events` is on.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.runtime = SimRuntime(self.config)
        self.port = 0
        self._server: EmbeddedServer | None = None
        self._tasks: TaskGroup | None = None
        self._socket: socket.socket | None = None
        self._held = ExitStack()
        """What the simulator holds of the process while it serves (uvicorn's log forwarding, the frozen heap)."""

    @property
    def host(self) -> str:
        """The address clients connect to."""
        return self.config.host

    @property
    def http_base_url(self) -> str:
        """Base URL for Chat Completions clients."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def ws_base_url(self) -> str:
        """Base URL for Realtime clients (the official client's `websocket_base_url`)."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event in and out, when `record_events` is on."""
        return self.runtime.log.events

    @property
    def open_sessions(self) -> int:
        """Realtime sessions open right now."""
        return self.runtime.open_sessions

    @property
    def peak_sessions(self) -> int:
        """The most Realtime sessions open at once so far."""
        return self.runtime.peak_sessions

    async def start(self) -> None:
        """Bind, start serving in the background, and return once the server accepts connections."""
        try:
            sock = _bound_socket(self.config.host, self.config.port)
        except OSError as exc:
            raise SimulatorError(f"cannot listen on {self.config.host}:{self.config.port}: {exc}") from exc
        sock.listen(2048)
        self._socket = sock
        self._held.enter_context(forwarding_server_logs)
        self.port = sock.getsockname()[1]
        uvicorn_config = uvicorn.Config(
            build_app(self.runtime),
            log_level=None,  # levels are `server_log`'s to set while the simulator serves
            log_config=None,  # no process-wide logging config: see `server_log`
            access_log=False,
            # The protocol whose connections `FrameWriter` can write to in batches.
            ws=WEBSOCKET_PROTOCOL,
            lifespan="off",
            ws_ping_interval=None,
            # Events are small JSON; deflate would cost CPU per frame and ~64 KB of zlib state per session.
            ws_per_message_deflate=False,
            ws_max_size=16 * 1024 * 1024,
            backlog=2048,
        )
        # Not `uvicorn.Server.serve()`: that takes SIGINT/SIGTERM from the program hosting the simulator.
        self._server = EmbeddedServer(uvicorn_config, sock)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._server.serve)
        with anyio.fail_after(10):
            while not self._server.started:
                await anyio.sleep(0.005)
        # The simulator's timings are what rtflow's are checked against: no full collection of its set-up heap
        # (tens of ms with the loop stopped) while it serves.
        self._held.enter_context(steady_heap())

    async def stop(self) -> None:
        """Stop serving: close every session and the event log. What the simulator holds of the process (the
        frozen heap, uvicorn's log forwarding) is handed back even when closing fails."""
        try:
            if self._server is not None:
                self._server.stop()
            if self._tasks is not None:
                await self._tasks.__aexit__(None, None, None)
                self._tasks = None
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            self.runtime.log.close()
        finally:
            self._held.close()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _bound_socket(host: str, port: int) -> StampedSocket:
    """A TCP socket bound to host:port (closed again if binding fails).

    IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and accepted sockets
    inherit it. With proto 0, Nagle's algorithm meets the client's delayed ACK and holds a response's first frames
    back ~40 ms. A StampedSocket accepts sockets whose reads carry the kernel's arrival times: the event log's `in`
    times are when a frame reached the machine.
    """
    sock = StampedSocket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock
