"""Keep-alive HTTP connections that stay cheap at a run's concurrency.

httpcore's pool (under httpx) looks its connections over on every request it queues and every response it
closes: for each idle connection it counts all the connections again, and it asks each idle socket whether it
is readable with a system call. That is quadratic in the pool's size. With 100 requests in flight over kept-alive
connections it cost several times what the requests did (`bench/dialogue_bench.py`, about 1,300 of whose 2,200
requests are Chat: 6 s of client CPU became 23 s).

`SplitPool` spreads the connections over several such pools, each kept small: a request goes to the pool with
the fewest requests in flight (the first, among equals), and a new pool opens only when every open one has a
request in flight. So requests made one after another share one pool and its connection, n requests at once
use n pools (up to `POOLS`, then about n / `POOLS` connections each), and every idle connection is reused by
the next request that lands in its pool.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from operator import attrgetter

import httpx

__all__ = ["SplitPool"]

POOLS = 16
"""At most this many pools: at 200 requests in flight, about a dozen connections each."""


class _Pool:
    """One httpx pool and how many of its requests are in flight."""

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.in_flight = 0

    def done(self) -> None:
        self.in_flight -= 1


class SplitPool(httpx.AsyncBaseTransport):
    """An httpx transport over up to `POOLS` connection pools, through `proxy` if one is given, with no limit of
    its own on connections."""

    def __init__(self, *, trust_env: bool, proxy: str | None = None) -> None:
        self._trust_env = trust_env
        self._proxy = proxy
        self._ssl_context: ssl.SSLContext | None = None
        self._pools: list[_Pool] = []

    def _pool(self) -> _Pool:
        """The pool the next request goes to (opening one when all are busy and there is room)."""
        if self._pools:
            least = min(self._pools, key=attrgetter("in_flight"))
            if least.in_flight == 0 or len(self._pools) == POOLS:
                return least
        if self._ssl_context is None:  # one certificate store for all pools: loading it costs milliseconds
            self._ssl_context = httpx.create_ssl_context(trust_env=self._trust_env)
        transport = httpx.AsyncHTTPTransport(
            verify=self._ssl_context,
            trust_env=self._trust_env,
            proxy=self._proxy,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )
        self._pools.append(_Pool(transport))
        return self._pools[-1]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool()
        pool.in_flight += 1
        try:
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            pool.done()
            raise
        response.stream = _UntilClosed(response.stream, pool.done)
        return response

    async def aclose(self) -> None:
        """Close every pool, even when one fails to close (the first failure is raised after)."""
        failures: list[Exception] = []
        for pool in self._pools:
            try:
                await pool.transport.aclose()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


class _UntilClosed(httpx.AsyncByteStream):
    """A response's body that says once when it is read to its end or closed, whichever comes first: its request
    is in flight until then (a body read to the end and never closed does not count for ever)."""

    def __init__(self, stream: httpx.AsyncByteStream | httpx.SyncByteStream, done: Callable[[], None]) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._done = done
        self._open = True

    def _end(self) -> None:
        if self._open:
            self._open = False
            self._done()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part
        self._end()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._end()
