"""An HTTP/1.1 client made for forwarding: pooled keep-alive connections to one upstream.

aiohttp's ClientSession is a general client: per request it builds a request
and a response object, merges default headers, cookies and SSL options,
re-arms a timer on every read, and writes a request's head and body apart.
A proxy needs none of that, and on small responses that work was most of its
time. Here a request is one write of its head, llhttp (through httptools)
parses the response as it arrives (`response`), and the body is handed
over in the chunks the socket gave:

    pool = ConnectionPool(settings)
    response = await pool.request(("127.0.0.1", 8080), "GET", "/path?q", headers)
    while chunk := await response.read(): ...
    response.release()  # read to its end: the connection goes back to the pool

A pool dials TCP, TCP then TLS (an `https://` upstream, see `tls`), or a
Unix socket (`unix:`), by what its upstream's URL says (`core.targets`); a TLS
connection is kept alive and reused like any other. Failures raise
`errors.UpstreamFailure`s.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import AsyncIterator

from multidict import CIMultiDict

from .errors import ConnectFailed, ConnectTimeout, Disconnected, PoolTimeout
from .connection import Connection
from .response import Interim, Response
from .tls import client_context, failure, server_name
from ..core.settings import UpstreamSettings
from ..core.targets import is_unix

__all__ = ["ConnectionPool", "Response"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})  # RFC 9110 §9.2.2


class ConnectionPool:
    """Keep-alive connections to one upstream's targets, at most `max_connections` open."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        # One context for every connection (and WebSocket handshake) to this upstream.
        self.tls: ssl.SSLContext | None = client_context(settings.tls) if settings.tls is not None else None
        self._unix = is_unix(settings.url)
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._all: set[Connection] = set()
        self._opening = 0
        self._waiters: deque[tuple[tuple[str, int], asyncio.Future[Connection | None]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._all) + self._opening

    async def request(self, key: tuple[str, int], method: str, path: str, headers: CIMultiDict[str],
                      body: AsyncIterator[bytes] | None = None, interim: Interim | None = None) -> Response:
        """Send a request to `key` (a target's host and port, or its socket path and 0: `targets.dial_key`)
        and return once the response's head is in.

        Without Content-Length, a body is sent chunked. A reused connection
        found closed before any of the response arrived is one the upstream
        timed out while idle: an idempotent request without a body goes again
        on a new connection (RFC 9112 §9.3.1.1); a body is a stream that
        cannot be sent twice. `interim` is told each interim response (1xx) but 100 Continue.
        """
        chunked = body is not None and "Content-Length" not in headers
        head = _serialize(method, path, headers, chunked)
        settings = self.settings
        while True:
            # An idle connection is taken at once, without a coroutine; else `_acquire` waits or dials.
            connection = self._take_idle(key) if not self._closed else None
            reused = connection is not None
            if connection is None:
                connection, reused = await self._acquire(key)
            response = Response(connection, method == "HEAD", body is not None,
                                settings.read_timeout, settings.max_line_size, interim)
            try:
                connection.send(response, head, body, chunked)
                await response.wait_head()
            except Disconnected:
                if reused and body is None and method in _IDEMPOTENT and not response.started:
                    continue
                raise
            return response

    # Slots. A slot is a place under `max_connections`: an open connection
    # (`_all`) or one being dialled (`_opening`). A slot that comes free goes at
    # once, by `_grant`, to the first waiter, counted in `_opening` before that
    # waiter runs, so no newcomer can take it and no waiter is woken for nothing.
    # The waiter then owns it: it dials, and if the dial fails or is cancelled,
    # `_open` frees it again, for the next waiter. Every path that frees a slot
    # (a dial that failed, a connection lost or dropped) calls `_grant`.

    async def _acquire(self, key: tuple[str, int]) -> tuple[Connection, bool]:
        """A connection to `key` when none is idle (`_take_idle` came first), and whether it was reused.

        First come, first served: while requests wait for a full pool, a new
        one queues behind them, and a released connection goes straight to
        the first waiter for its target, so no request waits twice.
        """
        if self._closed:
            raise Disconnected("the pool was closed")
        if not self._waiters and self._room_for(key):
            self._opening += 1
            return await self._open(key), False
        handed = await self._wait(key)
        if handed is not None:
            return handed, True
        return await self._open(key), False  # in the slot `_grant` gave this request

    def _take_idle(self, key: tuple[str, int]) -> Connection | None:
        idle = self._idle.get(key)
        connection = None
        while idle:
            candidate = idle.pop()
            if candidate.usable(self.loop.time() - self.settings.idle_timeout):
                connection = candidate
                break
            self._drop(candidate)
        self._grant()  # dropped ones free slots
        return connection

    def _room_for(self, key: tuple[str, int]) -> bool:
        """Whether a connection to `key` may be opened, closing an idle one to another target if need be.

        The slot so freed is the caller's: it takes it before anything else runs.
        """
        if self.open_connections < self.settings.max_connections:
            return True
        for other, idle in self._idle.items():
            if other != key and idle:
                self._drop(idle[0])
                return True
        return False

    def _drop(self, connection: Connection) -> None:
        """Close `connection` and free its slot now (not when the close completes): the caller takes or grants it."""
        self._forget(connection)
        connection.close()

    async def _wait(self, key: tuple[str, int]) -> Connection | None:
        """Queue for a connection to `key`: one handed over, or None for a slot to dial in."""
        settings = self.settings
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        expiry = self.loop.call_later(settings.connect_timeout + settings.read_timeout,
                                      _expire, waiter, settings.max_connections)
        try:
            return await waiter
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Cancelled just after being handed a connection or a slot: pass it on.
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self._opening -= 1
                    self._grant()
            raise
        finally:
            expiry.cancel()

    def _grant(self) -> None:
        """Give each free slot to the first waiter still waiting, to dial in (see Slots above)."""
        waiters = self._waiters
        while waiters and self.open_connections < self.settings.max_connections:
            _, waiter = waiters.popleft()
            if not waiter.done():  # else it timed out or was cancelled
                self._opening += 1
                waiter.set_result(None)

    async def _open(self, key: tuple[str, int]) -> Connection:
        """A new connection to `key`, in a slot the caller has counted in `_opening`."""
        connection: Connection | None = None
        try:
            if self._closed:
                raise Disconnected("the pool was closed")
            async with asyncio.timeout(self.settings.connect_timeout):
                connection = await self._dial(key)
            if self._closed or connection.transport is None:
                connection.close()  # the pool closed, or the upstream hung up, while it was being made
                connection = None
                raise Disconnected("the pool was closed" if self._closed else "the connection closed as it opened")
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {key[0]}:{key[1]} within "
                                 f"{self.settings.connect_timeout:g}s") from None
        except ssl.SSLError as exc:
            raise failure(exc) from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            # TCP connects are refused, not reset: a reset comes from the TLS handshake.
            if self.tls is not None:
                raise failure(exc) from exc
            raise ConnectFailed(exc) from exc
        except OSError as exc:
            raise ConnectFailed(exc) from exc
        finally:
            # Failed, timed out or cancelled: the slot is free again, for the next waiter.
            self._opening -= 1
            if connection is None:
                self._grant()
        connection.key = key
        self._all.add(connection)
        return connection

    async def _dial(self, key: tuple[str, int]) -> Connection:
        """A connection to `key`: its host and port (with TLS for https), or its Unix socket."""
        factory = lambda: Connection(self)  # noqa: E731
        if self._unix:
            _, connection = await self.loop.create_unix_connection(factory, key[0])
        elif self.tls is not None:
            assert self.settings.tls is not None
            _, connection = await self.loop.create_connection(
                factory, *key, ssl=self.tls, server_hostname=server_name(self.settings.tls, key[0]),
                ssl_handshake_timeout=self.settings.connect_timeout)
        else:
            _, connection = await self.loop.create_connection(factory, *key)
        return connection

    def release(self, connection: Connection) -> None:
        """Take back a connection whose exchange ended cleanly: to the first waiter for its target, else idle."""
        if self._closed or not connection.usable(None):
            connection.close()
            return
        waiters = self._waiters
        while waiters and waiters[0][1].done():
            waiters.popleft()  # timed out or cancelled
        if waiters:
            for entry in waiters:
                key, waiter = entry
                if key == connection.key and not waiter.done():
                    waiters.remove(entry)
                    waiter.set_result(connection)
                    return
            self._drop(connection)  # the waiters want other targets: make room for them
            self._grant()
            return
        connection.idle_since = self.loop.time()
        self._idle.setdefault(connection.key, []).append(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.settings.idle_timeout, self._close_idle)

    def lost(self, connection: Connection) -> None:
        """A connection closed: forget it, and let a waiter open another."""
        if self._forget(connection):
            self._grant()

    def _forget(self, connection: Connection) -> bool:
        if connection not in self._all:
            return False
        self._all.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
        return True

    def _close_idle(self) -> None:
        self._sweep = None
        oldest_kept = self.loop.time() - self.settings.idle_timeout
        for idle in self._idle.values():
            for connection in [c for c in idle if c.idle_since <= oldest_kept]:
                self._drop(connection)
        self._grant()
        if any(self._idle.values()) and not self._closed:
            self._sweep = self.loop.call_later(self.settings.idle_timeout / 2, self._close_idle)

    async def close(self) -> None:
        """Close every connection and fail every waiter; requests after this fail with Disconnected."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
        for connection in list(self._all):
            connection.close()
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(Disconnected("the pool was closed"))


def _expire(waiter: asyncio.Future, max_connections: int) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"all {max_connections} connections stayed busy"))


def _serialize(method: str, path: str, headers: CIMultiDict[str], chunked: bool) -> bytes:
    """The request head, e.g. b"GET /a?b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"."""
    lines = [f"{method} {path} HTTP/1.1", *map(": ".join, headers.items())]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")
