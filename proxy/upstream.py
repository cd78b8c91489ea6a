"""Connections to upstream services: one pooled ClientSession per upstream.

The session is set up as a proxy needs it and aiohttp's defaults are not:
no decompression, no cookie jar, no redirects followed, no default headers
(User-Agent, Accept, Accept-Encoding), URLs sent exactly as given.

`map_failure` is the one place where aiohttp client exceptions become
`errors.ProxyError`s.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import hdrs

from . import errors
from .settings import UpstreamSettings

log = logging.getLogger("errorproxy.upstream")

# aiohttp adds these unless told to skip them: a proxy sends only what the client sent.
_SKIP_AUTO_HEADERS = frozenset(
    {hdrs.USER_AGENT, hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE}
)


class Pool:
    """A ClientSession per upstream, created lazily inside the running loop."""

    def __init__(self, upstreams: dict[str, UpstreamSettings] | object) -> None:
        self._upstreams = upstreams
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, upstream: UpstreamSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(upstream.name)
        if session is None:
            session = self._sessions[upstream.name] = _make_session(upstream)
        return session

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
