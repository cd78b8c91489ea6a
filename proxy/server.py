"""The listening side: aiohttp's low-level server, hardened, and its lifecycle.

aiohttp's server has no deadline for a request's headers and keeps idle
connections for an hour; a proxy facing the internet needs both bounded, and
its own error shape for requests too broken to reach the handler.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from . import errors
from .headers import request_id
from .problem import Problem
from .render import render
from .settings import ServerSettings

log = logging.getLogger("errorproxy")


class _Connection(RequestHandler):
    """One client connection: aiohttp's handler plus a header deadline."""

    __slots__ = ("_header_timeout", "_header_timer", "_armed_at")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._armed_at = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # A new request starts when bytes arrive while no request is being served.
        if self._header_timer is None and not self._request_in_progress and not self._messages:
            self._arm()
        super().data_received(data)
        if self._header_timer is not None and self._request_count > self._armed_at:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timeout > 0:
            self._armed_at = self._request_count
            self._header_timer = self._loop.call_later(self._header_timeout, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._request_count == self._armed_at and not self._request_in_progress:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            log.info("closing connection from %s: request headers not complete within %ss", peer, self._header_timeout)
            self.force_close()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        """Requests aiohttp rejects itself get the proxy's problem shape, without raw bytes."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        rid = request_id(None)
        if status == 400:
            log.info("bad request from %s: %s request_id=%s", request.remote, message, rid)
            error: errors.ProxyError = errors.BadRequest()
        else:
            log.error("internal error request_id=%s", rid, exc_info=exc)
            error = errors.ProxyError()
            error.status = status
        problem = Problem.from_error(error, instance=None, request_id=rid)
        response = render(problem)
        response.force_close()
        return response


class ProxyServer(web.Server):
    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], limits: ServerSettings) -> None:
        super().__init__(
            handler,
            # A client that goes away cancels its handler, and so its upstream request.
            handler_cancellation=True,
            keepalive_timeout=limits.keepalive_timeout,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_line_size,
            max_headers=limits.max_headers,
            lingering_time=limits.lingering_time,
            auto_decompress=False,
            access_log=None,
        )
        self._header_timeout = limits.header_timeout

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


async def serve(proxy, *, ready: Callable[[list[str]], None] | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve `proxy` until SIGTERM/SIGINT (or `stop`), then drain and return."""
    settings = proxy.settings
    limits = settings.server
    server = ProxyServer(proxy.handle, limits)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=limits.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.listen.host, settings.listen.port, backlog=1024)
    await site.start()
    addresses = [_url(sock.getsockname()) for sock in site._server.sockets]  # type: ignore[union-attr]
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    log.info("errorproxy listening on %s (config %s, %d routes, %s event loop)",
             ", ".join(addresses), settings.source, len(settings.routes), loop_name)
    if ready is not None:
        ready(addresses)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping: no new connections, draining in-flight requests for up to %ss", limits.shutdown_timeout)
        await runner.cleanup()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await proxy.close()
    log.info("stopped")


def _url(sockname: tuple) -> str:
    host, port = sockname[0], sockname[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
