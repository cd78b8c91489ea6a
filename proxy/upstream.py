"""Connections to upstream services: one pooled ClientSession per upstream.

The session is set up as a proxy needs it and aiohttp's defaults are not:
no decompression, no cookie jar, no redirects followed, no default headers
(User-Agent, Accept, Accept-Encoding), URLs sent exactly as given.

An upstream with several targets still has one session: its connector pools
connections per host and port, so each target keeps its own keep-alive
connections, and `max_connections` caps them all together, as the setting
says. `Pool.send` picks the target for each try (see `balancer`) and makes
the retries.

`map_failure` is the one place where aiohttp client exceptions become
`errors.ProxyError`s.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Awaitable, Callable, TypeVar

import aiohttp
from aiohttp import hdrs
from yarl import URL

from . import errors, metrics
from .balancer import Balancer, Outcome
from .settings import UpstreamSettings

log = logging.getLogger("errorproxy.upstream")

# aiohttp adds these unless told to skip them: a proxy sends only what the client sent.
_SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)


R = TypeVar("R")

# True while the current try is opening a new connection to its target, as
# opposed to waiting for a free slot in the pool: aiohttp raises the same
# ConnectionTimeoutError for both, and only the first says the target is down.
_dialing: ContextVar[bool] = ContextVar("errorproxy_dialing", default=False)


class Pool:
    """A ClientSession and a Balancer per upstream, created lazily inside the running loop."""

    def __init__(self, upstreams: dict[str, UpstreamSettings] | object) -> None:
        self._upstreams = upstreams
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._balancers: dict[str, Balancer] = {}

    def session(self, upstream: UpstreamSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(upstream.name)
        if session is None:
            session = self._sessions[upstream.name] = _make_session(upstream)
        return session

    def balancer(self, upstream: UpstreamSettings) -> Balancer:
        balancer = self._balancers.get(upstream.name)
        if balancer is None:
            balancer = self._balancers[upstream.name] = Balancer.from_settings(upstream)
        return balancer

    async def send(self, upstream: UpstreamSettings, request_id: str, send_to: Callable[[URL], Awaitable[R]],
                   replayable: Callable[[], bool] = lambda: True) -> R:
        """`await send_to(target)` at the target the balancer picks, tried again elsewhere while allowed.

        `replayable()` says, after a failure, whether the request could still
        be sent again (False once its body started streaming). The last try's
        exception is raised unchanged, for the caller to map; each try that
        found its target unreachable is logged here.
        """
        balancer = self.balancer(upstream)
        tried: list[int] = []
        while True:
            index = balancer.pick(tried)
            tried.append(index)
            token = _dialing.set(False)
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
            finally:
                _dialing.reset(token)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


class _Response(aiohttp.ClientResponse):
    """aiohttp's response, refusing an ambiguous body length as llhttp does.

    RFC 9112 §6.3: differing Content-Length values are an unrecoverable error
    that a proxy answers with 502, closing the connection. llhttp rejects any
    repeated Content-Length; aiohttp's pure-Python parser frames the body by
    the first value and keeps them all, which would hand the ambiguity on to
    the client. The check is made here because by the time `start` returns,
    a short body is read and its connection already back in the pool.
    """

    async def start(self, connection) -> aiohttp.ClientResponse:
        protocol = connection.protocol
        response = await super().start(connection)
        lengths = self.headers.getall(hdrs.CONTENT_LENGTH, ())
        if len(lengths) > 1:
            if protocol is not None:
                protocol.close()  # may be pooled already: never to be reused
            raise aiohttp.ClientResponseError(
                self.request_info, self.history, status=self.status,
                message=f"{len(lengths)} Content-Length headers: {', '.join(lengths)[:100]}",
            )
        return response


def _outcome(exc: Exception) -> Outcome:
    """What a failed try says about its target."""
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
    # The hooks run in the requesting task, so they set `_dialing` in its context.
    trace = aiohttp.TraceConfig()
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
        response_class=_Response,
        trace_configs=[_dial_trace()],
    )


def map_failure(exc: BaseException, upstream: UpstreamSettings, request_id: str) -> errors.ProxyError:
    """The ProxyError for an exception raised while talking to `upstream`.

    The exception text is logged (it may quote raw upstream bytes) and never
    becomes part of the error sent to the client.
    """
    error: errors.ProxyError
    if isinstance(exc, aiohttp.ClientConnectorError):
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


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """Up to `cap` bytes of the body, and whether that is all of it.

    A body announced larger than the cap is not read at all. A read that fails
    gives what arrived and False: the caller then treats the body as unparsed.
    """
    length = response.content_length
    if length is not None and length > cap:
        return b"", False
    buffer = bytearray()
    try:
        while len(buffer) <= cap:
            chunk = await response.content.read(cap + 1 - len(buffer))
            if not chunk:
                return bytes(buffer), True
            buffer += chunk
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("reading an upstream error body failed: %s: %s", type(exc).__name__, str(exc)[:300])
        response.close()
    return bytes(buffer), False
