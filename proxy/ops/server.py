"""The listening side: aiohttp's low-level server, hardened, and its lifecycle.

aiohttp's server keeps idle connections for an hour and sends aiohttp's own
text for requests too broken to reach the handler; a proxy facing the internet
needs both bounded and its own error shape. Each connection is a
`connection.ClientConnection`, with deadlines and checks of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..core.settings import ServerSettings
from ..http import aiohttp_private as private
from ..observe import metrics
from ..observe.accesslog import Exchange
from ..upstream import idle_poll
from .admin import Admin, Readiness
from .connection import ClientConnection
from .listeners import https_port, remove_socket, start_public, start_redirect
from .platforms import install_signals
from .redirect import redirect_handler
from ..config.source import Source
from .reload import Holder, Reloader
from .tls import ListenerCertificates
from .tuning import tune_gc

log = logging.getLogger("errorproxy")

_CUT_GRACE = 2.0  # seconds for cut requests to finish closing (a WebSocket's closing handshake)


class ProxyServer(web.Server):
    """aiohttp's server of `ClientConnection`s; `refused` records each request refused as it was
    parsed (in the access log and the metrics: the handler never sees those)."""

    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], limits: ServerSettings,
                 refused: Callable[[Exchange], None] | None = None) -> None:
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
        self._limits = limits
        self._refused = refused

    def __call__(self) -> RequestHandler:
        loop, kwargs = private.handler_arguments(self)
        return ClientConnection(self, loop=loop, limits=self._limits, refused=self._refused, **kwargs)


async def serve(proxy, *, reload_from: Source | None = None, ready: Callable[[list[str]], None] | None = None,
                stop: asyncio.Event | None = None, reuse_port: bool = False) -> None:
    """Serve `proxy` until SIGTERM/SIGINT (or `stop`), then drain and return.

    With `reload_from`, SIGHUP (and a changed file, when `watch_config` is on)
    loads the configuration again and swaps in a new proxy of the same class.
    `reuse_port` lets several worker processes listen on one port.
    """
    settings = proxy.settings
    limits = settings.server
    holder = Holder(proxy)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    background: set[asyncio.Task] = set()
    # One context for the process's life: a reload loads a new certificate into it.
    certificates = ListenerCertificates(settings.tls) if settings.tls is not None else None
    reloader = Reloader(reload_from, holder, type(proxy), certificates) if reload_from is not None else None
    # Handlers before listening: a signal that arrives once "listening" is logged must find them.
    uninstall_signals = install_signals(
        loop, stop.set, reloader and (lambda: _start(background, reloader.reload("SIGHUP"))))
    def refused(exchange: Exchange) -> None:
        metrics.observe(exchange)
        holder.current.access_log.write(exchange)

    server = ProxyServer(holder.handle, limits, refused)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=limits.shutdown_timeout)
    readiness = Readiness(lambda: holder.current.settings, lambda: holder.current.upstreams,
                          switches=lambda: holder.current.switches)
    admin = Admin(readiness)
    site: web.BaseSite | None = None
    redirect: web.ServerRunner | None = None
    try:
        await runner.setup()
        site = await start_public(runner, settings, certificates and certificates.context, reuse_port)
        addresses = private.listening_urls(site, "https" if certificates is not None else "http")
        if settings.tls is not None and settings.tls.redirect_from is not None:
            redirect, urls = await start_redirect(ProxyServer(redirect_handler(https_port(settings, site)), limits),
                                                  settings.tls.redirect_from, reuse_port)
            log.info("redirecting %s to https", ", ".join(urls))
        readiness.ready = True
        # Before the public "listening on" line, so that line means both are up.
        await admin.start(reuse_port=reuse_port)
        loop_name = type(loop).__module__.split(".")[0]
        who = f"worker {os.getpid()}" if reuse_port else "errorproxy"
        log.info("%s listening on %s (config %s, %d routes, %s event loop)",
                 who, ", ".join(addresses), settings.source, len(settings.routes), loop_name)
        if reloader is not None:
            _start(background, reloader.watch())
        tune_gc()  # start-up is over
        if idle_poll.start(loop, limits.idle_poll):
            log.debug("polling for up to %.0f µs before sleeping (server.idle_poll)", limits.idle_poll * 1e6)
        if ready is not None:
            ready(addresses)
        await stop.wait()
        readiness.ready = False  # /readyz fails from now on, while the admin listener stays up to say so
        if redirect is not None:
            await redirect.cleanup()
        await _drain(holder, server, runner)
    finally:
        idle_poll.stop()
        uninstall_signals()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await runner.cleanup()  # a no-op after a drain; closes the listener if starting failed
        if redirect is not None:
            await redirect.cleanup()
        if site is not None:
            remove_socket(settings, site)
        await holder.close()
        await admin.stop()
    log.info("stopped")


async def _drain(holder: Holder, server: web.Server, runner: web.ServerRunner) -> None:
    """Stop gracefully: out of rotation, stop accepting, let requests end, cut what is left.

    The limits are the running config's, so a reload may change them.
    """
    limits = holder.current.settings.server
    if limits.stop_delay > 0:
        # Load balancers notice a failing readiness probe only at their next look.
        log.info("stopping: not ready; still accepting for %ss (server.stop_delay)", limits.stop_delay)
        await asyncio.sleep(limits.stop_delay)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.shutdown_timeout
    for site in list(runner.sites):
        await site.stop()
    await asyncio.sleep(0)  # connections accepted just before get their handler
    # Not aiohttp's pre_shutdown(): it stops reading every connection, which stalls
    # an upload in flight and deafens a WebSocket. Only idle ones close now; busy
    # ones close after their response.
    holder.stopping = True
    for connection in server.connections:
        if isinstance(connection, ClientConnection):
            connection.close_if_idle()
    log.info("stopping: no new connections, draining %d request(s) in flight for up to %ss",
             holder.in_flight, limits.shutdown_timeout)
    if not await holder.wait_idle(limits.shutdown_timeout):
        cut = holder.cancel()
        log.warning("stopping: cut %d request(s) still running after %ss (WebSockets closed with 1001)",
                    cut, limits.shutdown_timeout)
        await holder.wait_idle(_CUT_GRACE)
    # Handlers are done; responses they returned may still be on their way to slow clients.
    await server.shutdown(max(deadline - loop.time(), _CUT_GRACE))
    await runner.cleanup()


def _start(tasks: set[asyncio.Task], coro) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)

