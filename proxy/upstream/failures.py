"""The one place where a failure talking to an upstream becomes the status the client gets.

`map_failure` turns our client's `errors.UpstreamFailure`s (and aiohttp's
exceptions, from WebSocket handshakes) into `core.errors.ProxyError`s; the
exception text, which may quote raw upstream bytes, is logged and never sent.
`outcome` says what a failed try tells the balancer about its target, and
`retry_reason` what `retry_on` calls it.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from ..core import errors
from ..core.settings import UpstreamSettings
from ..observe import metrics
from . import errors as client_errors
from .balancer import Outcome
from .session import dialing
from .tls import failure as tls_failure

log = logging.getLogger("errorproxy.upstream")


def map_failure(exc: BaseException, upstream: UpstreamSettings, request_id: str) -> errors.ProxyError:
    """The ProxyError for an exception raised while talking to `upstream`; logged and counted here."""
    error: errors.ProxyError
    if isinstance(exc, client_errors.TLSFailed):
        tls_error = errors.TLSCertificateError if isinstance(exc, client_errors.CertificateRejected) else errors.TLSProtocolError
        error = tls_error(exc.words)
    elif isinstance(exc, client_errors.UpstreamFailure):
        error = _FAILURES.get(type(exc), errors.UpstreamError)()
        if isinstance(exc, client_errors.ConnectFailed) and not isinstance(exc.os_error, ConnectionRefusedError):
            error = errors.UpstreamError()
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return map_failure(tls_failure(exc.certificate_error), upstream, request_id)
    elif isinstance(exc, aiohttp.ClientConnectorSSLError):
        return map_failure(tls_failure(exc.os_error), upstream, request_id)
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


def outcome(exc: Exception) -> Outcome:
    """What a failed try says about its target."""
    if isinstance(exc, (client_errors.ConnectFailed, client_errors.ConnectTimeout)):
        return Outcome.UNREACHABLE  # no request was sent
    if isinstance(exc, client_errors.TLSFailed):
        return Outcome.FAILED if exc.request_sent else Outcome.UNREACHABLE
    if isinstance(exc, client_errors.UpstreamFailure):
        return Outcome.UNDECIDED if isinstance(exc, client_errors.PoolTimeout) else Outcome.FAILED
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome.UNREACHABLE  # refused, unreachable, no address, TLS handshake: no request sent
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Outcome.UNREACHABLE if dialing() else Outcome.UNDECIDED
    return Outcome.FAILED


# Connected, then nothing came back: closed, reset, or silent for read_timeout.
_RESETS = (client_errors.Disconnected, client_errors.ReadTimeout,
           aiohttp.ServerDisconnectedError, aiohttp.SocketTimeoutError, aiohttp.ClientOSError)


def retry_reason(exc: Exception, result: Outcome) -> str | None:
    """What `retry_on` calls a failed try whose `outcome` was `result`; None: nothing it can name.

    >>> retry_reason(client_errors.ReadTimeout("60s"), Outcome.FAILED)
    'reset'
    >>> retry_reason(client_errors.Malformed("bad status line"), Outcome.FAILED) is None
    True
    """
    if result is Outcome.UNREACHABLE:
        return "connect"
    if result is Outcome.FAILED and isinstance(exc, _RESETS):
        return "reset"
    return None
