"""Every failure errorproxy answers for itself, with the status it maps to.

    ProxyError                      status  Proxy-Status error (RFC 9209)
    ├── BadRequest                  400     (none: the client's fault)
    ├── RequestTimeout              408     (none: the client's body stalled, body_timeout)
    ├── UriTooLong                  414     (none: a request line past max_line_size)
    ├── CodingNotImplemented        501     (none: a request body in a transfer coding but chunked)
    ├── NoRoute                     404     destination_not_found
    ├── BodyTooLarge                413     (none)
    ├── VersionNotSupported         505     (none: a request line not HTTP/1.x)
    ├── MethodNotAllowed            405     (none: CONNECT, a tunnel a reverse proxy does not open)  Allow
    ├── UpstreamError               502     proxy_internal_error
    │   ├── ConnectionRefused       502     connection_refused
    │   ├── ConnectionTimeout       504     connection_timeout
    │   ├── ResponseTimeout         504     http_response_timeout
    │   ├── ResponseMalformed       502     http_protocol_error
    │   ├── ResponseIncomplete      502     http_response_incomplete
    │   ├── ResponseTooLarge        502     http_response_header_section_size
    │   ├── UpgradeFailed           502     http_upgrade_failed
    │   ├── ConnectionLimitReached  503     connection_limit_reached (max_requests or max_pending
    │   │                                   reached; Retry-After: 1)
    │   ├── TLSCertificateError     502     tls_certificate_error (its certificate did not verify)
    │   ├── TLSProtocolError        502     tls_protocol_error (the handshake failed otherwise)
    │   └── UpgradeRefused          the upstream's status (received-status=...)
    ├── (the conflict guard's refusals: 412, 428, 503, in `guard_errors`)
    ├── Maintenance                 503     destination_unavailable; details="maintenance"  Retry-After
    └── ClientGone                  499     (logged only: nobody is left to answer)

An error may carry problem `extensions` and response headers to `keep`
(a 412's current ETag, a 503's Retry-After); `render` adds both.

Upstream library exceptions become these in one place, `upstream.failures.map_failure`;
their text (which can hold raw upstream bytes) is logged, never sent.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from .texts import N_


class ProxyError(Exception):
    status = 500
    title = "Internal Server Error"
    detail = "The proxy could not complete the request."
    proxy_status: str | None = "proxy_internal_error"
    extensions: Mapping[str, object] = MappingProxyType({})  # added to the problem's members
    keep: tuple[tuple[str, str], ...] = ()  # response headers the client needs to act on it
    # The client's framing can no longer be trusted (or the rest of its body is not
    # wanted): the connection closes after the answer.
    closes_connection = False
    page: str | None = None  # the HTML template tried first, before the route's own
    # The upstream's own answer, passed on (a refused WebSocket handshake): rendered as an upstream
    # error in the route's shape, with Proxy-Status received-status.
    answered = False

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class BadRequest(ProxyError):
    status = 400
    title = "Bad Request"
    detail = "The request could not be understood."
    proxy_status = None
    closes_connection = True


class RequestTimeout(ProxyError):
    """The client's request body stopped arriving for longer than `server.body_timeout`."""

    status = 408
    title = "Request Timeout"
    detail = "The request body stopped arriving before it was complete."
    proxy_status = None
    closes_connection = True


class UriTooLong(ProxyError):
    """A request line past `server.max_line_size` (RFC 9112 §3: 414), as nginx answers."""

    status = 414
    title = "URI Too Long"
    detail = "The request target is longer than this server accepts."
    proxy_status = None
    closes_connection = True


class CodingNotImplemented(ProxyError):
    """A request body in a transfer coding other than chunked alone (RFC 9112 §6.1): 501, as nginx answers."""

    status = 501
    title = "Not Implemented"
    detail = "A request body is accepted in the chunked transfer coding alone."
    proxy_status = None
    closes_connection = True


class VersionNotSupported(ProxyError):
    status = 505
    title = "HTTP Version Not Supported"
    detail = "Only HTTP/1.0 and HTTP/1.1 requests are served here."
    proxy_status = None
    closes_connection = True


class MethodNotAllowed(ProxyError):
    """CONNECT: a request for a tunnel, which is a forward proxy's job. nginx answers it 405 too."""

    status = 405
    title = "Method Not Allowed"
    detail = "This method is not allowed here. The Allow header lists the ones that are."
    proxy_status = None
    # What follows a CONNECT's head is tunnel bytes to llhttp and another request to the
    # Python parser: neither can be trusted, so the connection closes after the answer.
    closes_connection = True
    keep = (("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),)


class NoRoute(ProxyError):
    status = 404
    title = "Not Found"
    detail = "No route is configured for this host, path and method."
    proxy_status = "destination_not_found"


class BodyTooLarge(ProxyError):
    status = 413
    title = "Content Too Large"
    detail = "The request body is larger than this route accepts."
    proxy_status = None
    closes_connection = True


class UpstreamError(ProxyError):
    status = 502
    title = "Bad Gateway"
    detail = "The service behind this address could not be reached."


class ConnectionRefused(UpstreamError):
    detail = "The service behind this address refused the connection."
    proxy_status = "connection_refused"


class ConnectionTimeout(UpstreamError):
    status = 504
    title = "Gateway Timeout"
    detail = "The service behind this address did not accept a connection in time."
    proxy_status = "connection_timeout"


class ResponseTimeout(UpstreamError):
    status = 504
    title = "Gateway Timeout"
    detail = "The service behind this address did not answer in time."
    proxy_status = "http_response_timeout"


class ResponseMalformed(UpstreamError):
    detail = "The service behind this address sent a response that is not valid HTTP."
    proxy_status = "http_protocol_error"


class ResponseIncomplete(UpstreamError):
    detail = "The service behind this address closed the connection before answering."
    proxy_status = "http_response_incomplete"


class ResponseTooLarge(UpstreamError):
    detail = "The service behind this address sent response headers that are too large."
    proxy_status = "http_response_header_section_size"


class UpgradeFailed(UpstreamError):
    detail = "The service behind this address did not accept the WebSocket upgrade."
    proxy_status = "http_upgrade_failed"


class TLSCertificateError(UpstreamError):
    """The upstream's certificate did not verify; `detail` says why (expired, unknown issuer, name)."""

    detail = "The service's TLS certificate was not accepted."
    proxy_status = "tls_certificate_error"


class TLSProtocolError(UpstreamError):
    """The TLS handshake with the upstream failed for a reason other than its certificate."""

    detail = "The TLS handshake with the service failed."
    proxy_status = "tls_protocol_error"


class ConnectionLimitReached(UpstreamError):
    """The upstream's circuit breaker is open: too many requests await it already (RFC 9209 §2.3.12)."""

    status = 503
    title = "Service Unavailable"
    detail = "The service behind this address is busy with as many requests as it takes. Try again shortly."
    proxy_status = "connection_limit_reached"
    keep = (("Retry-After", "1"),)


class ClientGone(ProxyError):
    status = 499
    title = "Client Closed Request"
    detail = "The client closed the connection before the response was sent."
    proxy_status = None


class UpgradeRefused(UpstreamError):
    """The upstream answered a WebSocket upgrade with an error status: the client gets that status
    and the headers it needs to act on it (a 401's challenge, a 429's Retry-After)."""

    detail = "The service behind this address refused the WebSocket upgrade."
    proxy_status = None
    answered = True

    def __init__(self, status: int, keep: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.status = status
        self.title = ""  # the status's own reason phrase
        self.keep = keep


class Maintenance(ProxyError):
    """The route is in maintenance (core.maintenance): answered here, never forwarded.

    RFC 9209's `destination_unavailable` is "the intermediary considers the
    next hop to be unavailable", which is what an operator's switch says;
    `details` tells it from an outage. `detail` is the window's message, or a
    stock text that is translated.
    """

    status = 503
    title = "Service Unavailable"
    detail = N_("error.maintenance", "This service is down for maintenance. Please try again later.")
    proxy_status = 'destination_unavailable; details="maintenance"'
    page = "maintenance.html"

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.keep = (("Retry-After", str(retry_after)),)
