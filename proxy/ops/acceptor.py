"""A TCP listener that accepts every waiting connection at once.

uvloop's listener (libuv) accepts one connection per turn of the event loop.
Under load a turn takes tens of milliseconds, so when a thousand clients
connect together, most wait in the kernel's accept queue for seconds: their
requests time out before the proxy has seen them, and the queue overflows into
SYN retransmits (1 s, 3 s). nginx (`multi_accept`) and asyncio's own loop
accept in a batch; so does this listener: when the socket is readable, it
accepts up to `BATCH` connections and hands each to the event loop as an
accepted socket (TLS handshakes included).

    site = AcceptingSite(runner, "0.0.0.0", 8080, ssl_context=None, backlog=1024, reuse_port=False)
    await site.start()   # as aiohttp's TCPSite, from which it differs only in how it accepts
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl

from aiohttp import web

log = logging.getLogger("errorproxy")

BATCH = 256  # connections accepted in one go, before the loop serves the others again
_RETRY_FULL = 0.1  # seconds before accepting again once the process is out of file descriptors
_NO_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Acceptor:
    """Accepts on one listening socket; shaped like the asyncio.Server aiohttp's sites keep."""

    def __init__(self, sock: socket.socket, protocol_factory, context: ssl.SSLContext | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self._context = context
        self._handshakes: set[asyncio.Task] = set()
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def _accept(self) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while it waited: nothing to serve
            except OSError as exc:
                if exc.errno in _NO_FDS:
                    # The socket stays readable: pause, or the loop would spin on it.
                    log.warning("accepting connections paused for %gs: %s", _RETRY_FULL, exc.strerror)
                    self._loop.remove_reader(self._sock.fileno())
                    self._loop.call_later(_RETRY_FULL, self._resume)
                    return
                raise
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._serve(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._context)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            # A client that fails its TLS handshake or leaves at once: the connection was never served.
            log.debug("connection not served: %s: %s", type(exc).__name__, exc)
            conn.close()

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop listening; connections already accepted are the server's to drain."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.gather(*self._handshakes, return_exceptions=True)


class AcceptingSite(web.BaseSite):
    """aiohttp's TCPSite, listening through `Acceptor`s (one a resolved address)."""

    __slots__ = ("_host", "_port", "_reuse_port", "_acceptors")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                 backlog: int, reuse_port: bool) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._acceptors: list[Acceptor] = []

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        sockets = listen_sockets(self._host, self._port, self._backlog, self._reuse_port)
        self._acceptors = [Acceptor(sock, server, self._ssl_context) for sock in sockets]
        self._server = _Group(self._acceptors)  # what BaseSite.stop closes


class _Group:
    """The acceptors of one site, as one server."""

    def __init__(self, acceptors: list[Acceptor]) -> None:
        self._acceptors = acceptors

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(sock for acceptor in self._acceptors for sock in acceptor.sockets)

    def close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()

    async def wait_closed(self) -> None:
        for acceptor in self._acceptors:
            await acceptor.wait_closed()


def listen_sockets(host: str, port: int, backlog: int, reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address `host` resolves to, as asyncio binds them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 address binds its own
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                                         f"{exc.strerror.lower()}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
