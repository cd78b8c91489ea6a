"""The public listener's sockets: TCP or a Unix socket, with TLS or without, and the https redirect.

    listen: 0.0.0.0:8443 + tls         ─▶ AcceptingSite (acceptor.py) with the listener's SSLContext
    listen: unix:/run/errorproxy.sock  ─▶ UnixSite, chmod to listen_mode, removed again at stop
    tls.redirect_from: 0.0.0.0:8080    ─▶ a second, plain TCP listener answering 308 (`redirect`)
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
import stat

from aiohttp import web

from ..core.settings import Address, Settings, UnixAddress
from ..http import aiohttp_private as private
from .acceptor import AcceptingSite

log = logging.getLogger("errorproxy")

# Connections the kernel holds for us before they are accepted; the effective
# value is capped by net.core.somaxconn (4096 on current Linux).
BACKLOG = 4096


async def start_public(runner: web.BaseRunner, settings: Settings, context: ssl.SSLContext | None,
                       reuse_port: bool) -> web.BaseSite:
    """Listen on `settings.listen`; OSError (with the address) when it cannot."""
    listen = settings.listen
    site: web.BaseSite
    if isinstance(listen, UnixAddress):
        _refuse_live_socket(listen.path)  # else the loop would remove another server's socket and take its place
        site = web.UnixSite(runner, listen.path, ssl_context=context, backlog=BACKLOG)
        await site.start()
        if settings.listen_mode is not None:
            os.chmod(listen.path, settings.listen_mode)
    else:
        if hasattr(socket, "AF_UNIX"):  # POSIX: a selector under the loop, so add_reader works
            site = AcceptingSite(runner, listen.host, listen.port, ssl_context=context, backlog=BACKLOG,
                                 reuse_port=reuse_port)
        else:  # Windows' proactor loop has no add_reader: aiohttp's own site
            site = web.TCPSite(runner, listen.host, listen.port, ssl_context=context, backlog=BACKLOG)
        await site.start()
    return site


def remove_socket(settings: Settings, site: web.BaseSite) -> None:
    """Remove a Unix listener's socket file once it stops listening (the loop leaves it behind)."""
    listen = settings.listen
    if isinstance(listen, UnixAddress) and isinstance(site, web.UnixSite):
        try:
            if stat.S_ISSOCK(os.lstat(listen.path).st_mode):
                os.unlink(listen.path)
        except OSError:
            pass


def _refuse_live_socket(path: str) -> None:
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return  # not a socket (or none): binding reports it
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # a socket left by a process that is gone: safe to replace
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "address already in use (another process is listening there)")


async def start_redirect(server: web.Server, address: Address, reuse_port: bool) -> tuple[web.ServerRunner, list[str]]:
    """Serve `server` (a `redirect.redirect_handler`) on plain HTTP at `address`; its runner and URLs."""
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = await start_side(runner, address, reuse_port)
    except OSError as exc:
        exc.address = f"tls.redirect_from {address}"  # type: ignore[attr-defined]  # for the command line's message
        raise
    return runner, private.listening_urls(site)


async def start_side(runner: web.BaseRunner, address: Address, reuse_port: bool) -> web.TCPSite:
    """A plain TCP site for a side listener (admin, redirect); `runner` is cleaned up when binding fails."""
    site = web.TCPSite(runner, address.host, address.port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return site


def https_port(settings: Settings, site: web.BaseSite) -> int:
    """The port a redirect names: `tls.redirect_port`, else the port the TLS listener got."""
    tls = settings.tls
    if tls is not None and tls.redirect_port is not None:
        return tls.redirect_port
    urls = private.listening_urls(site)
    return int(urls[0].rsplit(":", 1)[1]) if urls else 443
