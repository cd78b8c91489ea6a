"""Every failure errorproxy answers for itself, with the status it maps to.

    ProxyError                      status  Proxy-Status error (RFC 9209)
    ├── BadRequest                  400     (none: the client's fault)
    ├── NoRoute                     404     destination_not_found
    ├── BodyTooLarge                413     (none)
    ├── UpstreamError               502     proxy_internal_error
    │   ├── ConnectionRefused       502     connection_refused
    │   ├── ConnectionTimeout       504     connection_timeout
    │   ├── ResponseTimeout         504     http_response_timeout
    │   ├── ResponseMalformed       502     http_protocol_error
    │   ├── ResponseIncomplete      502     http_response_incomplete
    │   ├── ResponseTooLarge        502     http_response_header_section_size
    │   ├── UpgradeFailed           502     http_upgrade_failed
    │   └── UpgradeRefused          the upstream's status (received-status=...)
    └── ClientGone                  499     (logged only: nobody is left to answer)

Upstream library exceptions become these in one place, `upstream.failures.map_failure`;
their text (which can hold raw upstream bytes) is logged, never sent.
"""

from __future__ import annotations


class ProxyError(Exception):
    status = 500
    title = "Internal Server Error"
    detail = "The proxy could not complete the request."
    proxy_status: str | None = "proxy_internal_error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class BadRequest(ProxyError):
    status = 400
    title = "Bad Request"
    detail = "The request could not be understood."
    proxy_status = None


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

    def __init__(self, status: int, keep: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.status = status
        self.title = ""  # the status's own reason phrase
        self.keep = keep
