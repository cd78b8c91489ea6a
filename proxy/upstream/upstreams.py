"""Connections to upstream services: a connection pool per upstream, and the retries across its targets.

Requests go through `client.ConnectionPool`, made for forwarding. WebSocket
handshakes go through an aiohttp ClientSession, set up as a proxy needs it
and aiohttp's defaults are not: no decompression, no cookie jar, no
redirects followed, no default headers, URLs sent exactly as given.

An upstream with several targets still has one pool: it keeps keep-alive
connections per target, and `max_connections` caps them all together, as
the setting says. `Pool.send` picks the target for each try (see
`balancer`) and makes the retries.

`map_failure` is the one place where client exceptions become
`errors.ProxyError`s.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

import aiohttp
from aiohttp import hdrs
from yarl import URL

from . import errors as client_errors

from ..core import errors

from ..observe import metrics
from .balancer import Balancer, Outcome
from .pool import ConnectionPool, Response
from ..core.settings import UpstreamSettings

log = logging.getLogger("errorproxy.upstream")

# aiohttp adds these unless told to skip them: a proxy sends only what the client sent.
_SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)


R = TypeVar("R")

# True while a WebSocket handshake's try is opening a new connection to its
# target, as opposed to waiting for a free slot in the session's pool: aiohttp
# raises the same ConnectionTimeoutError for both, and only the first says the
# target is down. (Requests go through `client.ConnectionPool`, whose errors
# say which it was.) Set by the session's trace hooks, in the requesting task.
_dialing: ContextVar[bool] = ContextVar("errorproxy_dialing", default=False)


@dataclass
class _Upstream:
    """What the proxy keeps for one upstream, made inside the running loop on its first request."""

    balancer: Balancer
    connections: ConnectionPool
    session: aiohttp.ClientSession | None = None  # for WebSocket handshakes, made on the first one


class Pool:
    """The connection pool, balancer and WebSocket session of each upstream."""

    def __init__(self) -> None:
        self._upstreams: dict[str, _Upstream] = {}

    def _get(self, upstream: UpstreamSettings) -> _Upstream:
        kept = self._upstreams.get(upstream.name)
        if kept is None:
            kept = self._upstreams[upstream.name] = _Upstream(Balancer.from_settings(upstream),
                                                              ConnectionPool(upstream))
        return kept

    def connections(self, upstream: UpstreamSettings) -> ConnectionPool:
        return self._get(upstream).connections

    def session(self, upstream: UpstreamSettings) -> aiohttp.ClientSession:
        kept = self._get(upstream)
        if kept.session is None:
            kept.session = _make_session(upstream)
        return kept.session

    async def send(self, upstream: UpstreamSettings, request_id: str, send_to: Callable[[URL], Awaitable[R]],
                   replayable: Callable[[], bool] = lambda: True) -> R:
        """`await send_to(target)` at the target the balancer picks, tried again elsewhere while allowed.

        `replayable()` says, after a failure, whether the request could still
        be sent again (False once its body started streaming). The last try's
        exception is raised unchanged, for the caller to map; each try that
        found its target unreachable is logged here.
        """
        balancer = self._get(upstream).balancer
        tried: list[int] = []
        while True:
            index = balancer.pick(tried)
            tried.append(index)
            try:
                result = await send_to(upstream.targets[index])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcome = _outcome(exc)
                balancer.report(index, outcome)
                delay = balancer.retry_delay(outcome, len(tried), replayable())
                if outcome is Outcome.UNREACHABLE:
                    log.warning(
                        "upstream %s target %s unreachable (%s: %s), ejected for %gs%s request_id=%s",
                        upstream.name, upstream.targets[index], type(exc).__name__, str(exc)[:300],
                        upstream.eject_for, "" if delay is None else f", trying another in {delay:g}s",
                        request_id,
                    )
                if delay is None:
                    raise
            else:
                balancer.report(index, Outcome.CONNECTED)
                return result
            await asyncio.sleep(delay)

    async def close(self) -> None:
        kept, self._upstreams = list(self._upstreams.values()), {}
        for upstream in kept:
            await upstream.connections.close()
            if upstream.session is not None:
                await upstream.session.close()


def _outcome(exc: Exception) -> Outcome:
    """What a failed try says about its target."""
    if isinstance(exc, (client_errors.ConnectFailed, client_errors.ConnectTimeout)):
        return Outcome.UNREACHABLE  # no request was sent
    if isinstance(exc, client_errors.UpstreamFailure):
        return Outcome.UNDECIDED if isinstance(exc, client_errors.PoolTimeout) else Outcome.CONNECTED
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome.UNREACHABLE  # refused, unreachable, no address, TLS handshake: no request sent
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Outcome.UNREACHABLE if _dialing.get() else Outcome.UNDECIDED
    return Outcome.CONNECTED


async def _on_dial_start(session: object, context: object, params: object) -> None:
    _dialing.set(True)


async def _on_dial_end(session: object, context: object, params: object) -> None:
    _dialing.set(False)


def _dial_trace() -> aiohttp.TraceConfig:
    # The hooks run in the requesting task, so they set `_dialing` in its context;
    # each try starts from False, whatever an earlier try's dial left behind.
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_dial_end)
    trace.on_connection_create_start.append(_on_dial_start)
    trace.on_connection_create_end.append(_on_dial_end)
    return trace


def _make_session(upstream: UpstreamSettings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=upstream.max_connections,
        limit_per_host=0,
        keepalive_timeout=upstream.idle_timeout,
        ttl_dns_cache=10,
        enable_cleanup_closed=False,
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


def map_failure(exc: BaseException, upstream: UpstreamSettings, request_id: str) -> errors.ProxyError:
    """The ProxyError for an exception raised while talking to `upstream`.

    The exception text is logged (it may quote raw upstream bytes) and never
    becomes part of the error sent to the client.
    """
    error: errors.ProxyError
    if isinstance(exc, client_errors.UpstreamFailure):
        error = _FAILURES.get(type(exc), errors.UpstreamError)()
        if isinstance(exc, client_errors.ConnectFailed) and not isinstance(exc.os_error, ConnectionRefusedError):
            error = errors.UpstreamError()
    elif isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        error = errors.ConnectionRefused() if refused else errors.UpstreamError()
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = errors.ConnectionTimeout()
    elif isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
        error = errors.ResponseTimeout()
    elif isinstance(exc, aiohttp.WSServerHandshakeError):
        error = errors.UpgradeFailed()
    elif isinstance(exc, aiohttp.ClientResponseError):
        too_long = "Got more than" in (exc.message or "")
        error = errors.ResponseTooLarge() if too_long else errors.ResponseMalformed()
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        error = errors.ResponseIncomplete()
    else:
        error = errors.UpstreamError()
    log.warning(
        "upstream %s failed: %s (%s: %s) request_id=%s",
        upstream.name, error.proxy_status, type(exc).__name__, str(exc)[:300], request_id,
    )
    metrics.upstream_failed(upstream.name, error.proxy_status)
    return error


_FAILURES: dict[type, type[errors.ProxyError]] = {
    client_errors.ConnectFailed: errors.ConnectionRefused,
    client_errors.ConnectTimeout: errors.ConnectionTimeout,
    client_errors.PoolTimeout: errors.ConnectionTimeout,
    client_errors.ReadTimeout: errors.ResponseTimeout,
    client_errors.Malformed: errors.ResponseMalformed,
    client_errors.HeadersTooLarge: errors.ResponseTooLarge,
    client_errors.Disconnected: errors.ResponseIncomplete,
}


async def read_capped(response: Response, cap: int) -> tuple[bytes, bool]:
    """Up to `cap` bytes of the body, and whether that is all of it (else: a little more than `cap`).

    A body announced larger than the cap is not read at all. A read that fails
    gives what arrived and False: the caller then treats the body as unparsed.
    """
    length = response.content_length
    if length is not None and length > cap:
        return b"", False
    buffer = b""
    try:
        while len(buffer) <= cap:
            chunk = await response.read()
            if not chunk:
                return buffer, True
            buffer += chunk
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("reading an upstream error body failed: %s: %s", type(exc).__name__, str(exc)[:300])
        response.close()
    return buffer, False
