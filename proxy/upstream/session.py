"""The aiohttp ClientSession an upstream's WebSocket handshakes go through.

Set up as a proxy needs it and aiohttp's defaults are not: no decompression,
no cookie jar, no redirects followed, no default headers, URLs sent exactly
as given. An `https://` upstream's session uses its pool's TLS context; a
`unix:` target gets a session of its own, on its socket. (Plain requests go
through our own `pool.ConnectionPool`.)
"""

from __future__ import annotations

import ssl
from contextvars import ContextVar

import aiohttp
from aiohttp import hdrs

from ..core.settings import UpstreamSettings

# aiohttp adds these unless told to skip them: a proxy sends only what the client sent.
_SKIP_AUTO_HEADERS = frozenset({hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE})

# True while a handshake's try is opening a new connection to its target, as
# opposed to waiting for a free slot in the session's pool: aiohttp raises the
# same ConnectionTimeoutError for both, and only the first says the target is
# down. Set by the session's trace hooks, in the requesting task.
_dialing: ContextVar[bool] = ContextVar("errorproxy_dialing", default=False)


def dialing() -> bool:
    return _dialing.get()


async def _on_dial_start(session: object, context: object, params: object) -> None:
    _dialing.set(True)


async def _on_dial_end(session: object, context: object, params: object) -> None:
    _dialing.set(False)


async def _refuse_redirect(session: object, context: object, params: aiohttp.TraceRequestRedirectParams) -> None:
    # ws_connect follows redirects, and takes no allow_redirects: a redirect is the upstream's
    # answer to the handshake, raised as one, or the proxy would go wherever Location points.
    response = params.response
    response.release()
    raise aiohttp.WSServerHandshakeError(response.request_info, response.history, status=response.status,
                                         message="a redirect, not followed", headers=response.headers)


def _dial_trace() -> aiohttp.TraceConfig:
    # The hooks run in the requesting task, so they set `_dialing` in its context;
    # each try starts from False, whatever an earlier try's dial left behind.
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_dial_end)
    trace.on_connection_create_start.append(_on_dial_start)
    trace.on_connection_create_end.append(_on_dial_end)
    trace.on_request_redirect.append(_refuse_redirect)
    return trace


def make_session(upstream: UpstreamSettings, tls: ssl.SSLContext | None = None,
                 socket_path: str | None = None) -> aiohttp.ClientSession:
    """A session for `upstream`'s WebSocket handshakes: over TCP (with `tls` when given), or to `socket_path`."""
    connector: aiohttp.BaseConnector
    if socket_path is not None:
        connector = aiohttp.UnixConnector(socket_path, limit=upstream.max_connections,
                                          keepalive_timeout=upstream.idle_timeout)
    else:
        connector = aiohttp.TCPConnector(
            limit=upstream.max_connections,
            limit_per_host=0,
            keepalive_timeout=upstream.idle_timeout,
            ttl_dns_cache=10,
            enable_cleanup_closed=False,
            ssl=tls if tls is not None else True,
        )
    timeout = aiohttp.ClientTimeout(
        total=None,
        # Waiting for a pooled connection counts here too: a pool held full for a
        # whole read timeout is as good as an unanswering upstream.
        connect=upstream.connect_timeout + upstream.read_timeout,
        sock_connect=upstream.connect_timeout,
        sock_read=upstream.read_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        requote_redirect_url=False,
        trust_env=False,
        max_line_size=upstream.max_line_size,
        max_field_size=upstream.max_line_size,
        read_bufsize=2**16,
        trace_configs=[_dial_trace()],
    )
