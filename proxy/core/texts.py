"""The proxy's own words, in English, each with the stable id its translations are found by.

A text the proxy writes itself (a status's default detail, the detail of one
of its own errors) is a `Text`: a str that also carries its message id, so
the renderer can tell it from words an upstream wrote, which are never
translated. `N_` marks one in the source; Babel's extractor finds the marks
(keyword `N_:1c,2`: the id is the gettext message context) and the catalogs
under proxy/locale/ hold the translations.

>>> detail = N_("409.detail", "The resource was changed by another request.")
>>> detail == "The resource was changed by another request.", detail.id
(True, '409.detail')
>>> title_id(409, "Conflict"), title_id(409, "Edit conflict"), title_id(413, "Request Entity Too Large")
('409.title', None, '413.title')
"""

from __future__ import annotations

from .status import reason


class Text(str):
    """An English text of the proxy's own; `id` names its translations."""

    id: str

    def __reduce__(self):  # keep the id through copy and pickle
        return (N_, (self.id, str(self)))


def N_(id: str, source: str) -> Text:  # noqa: N802 - gettext's name for a text marked, not yet translated
    """Mark `source` as the text of message `id`; it stays English until rendered."""
    text = Text(source)
    text.id = id
    return text


# Status titles as RFC 9110 names them. A problem's title is translated when it is
# the status's standard phrase: this one, or Python's (older in places: "Request
# Entity Too Large" for 413 before 3.13), whatever wrote it.
TITLES = {
    400: N_("400.title", "Bad Request"),
    401: N_("401.title", "Unauthorized"),
    402: N_("402.title", "Payment Required"),
    403: N_("403.title", "Forbidden"),
    404: N_("404.title", "Not Found"),
    405: N_("405.title", "Method Not Allowed"),
    406: N_("406.title", "Not Acceptable"),
    407: N_("407.title", "Proxy Authentication Required"),
    408: N_("408.title", "Request Timeout"),
    409: N_("409.title", "Conflict"),
    410: N_("410.title", "Gone"),
    411: N_("411.title", "Length Required"),
    412: N_("412.title", "Precondition Failed"),
    413: N_("413.title", "Content Too Large"),
    414: N_("414.title", "URI Too Long"),
    415: N_("415.title", "Unsupported Media Type"),
    416: N_("416.title", "Range Not Satisfiable"),
    417: N_("417.title", "Expectation Failed"),
    418: N_("418.title", "I'm a Teapot"),
    421: N_("421.title", "Misdirected Request"),
    422: N_("422.title", "Unprocessable Content"),
    423: N_("423.title", "Locked"),
    424: N_("424.title", "Failed Dependency"),
    425: N_("425.title", "Too Early"),
    426: N_("426.title", "Upgrade Required"),
    428: N_("428.title", "Precondition Required"),
    429: N_("429.title", "Too Many Requests"),
    431: N_("431.title", "Request Header Fields Too Large"),
    451: N_("451.title", "Unavailable For Legal Reasons"),
    500: N_("500.title", "Internal Server Error"),
    501: N_("501.title", "Not Implemented"),
    502: N_("502.title", "Bad Gateway"),
    503: N_("503.title", "Service Unavailable"),
    504: N_("504.title", "Gateway Timeout"),
    505: N_("505.title", "HTTP Version Not Supported"),
    506: N_("506.title", "Variant Also Negotiates"),
    507: N_("507.title", "Insufficient Storage"),
    508: N_("508.title", "Loop Detected"),
    510: N_("510.title", "Not Extended"),
    511: N_("511.title", "Network Authentication Required"),
}
# The title of a 4xx or 5xx status that has no name of its own (`reason` says the same).
CLASS_TITLES = {
    4: N_("4xx.title", "Client Error"),
    5: N_("5xx.title", "Server Error"),
}


def title_id(status: int, title: str) -> str | None:
    """The message id of `title` when it is the standard phrase of `status`, else None."""
    own = TITLES.get(status) or CLASS_TITLES.get(status // 100)
    if own is None:
        return None
    return own.id if title in (own, reason(status)) else None


def text_id(text: str) -> str | None:
    """The message id of one of the proxy's own texts; None for any other string (an upstream's)."""
    return text.id if isinstance(text, Text) else None


# The details of the proxy's own errors (core/errors.py), by the class they belong to.
# `Problem.from_error` swaps an error's stock detail for its Text here; a detail written
# for one error in particular (a parser's message, say) has no id and stays as written.
PROXY_DETAILS = (
    N_("error.proxy_error", "The proxy could not complete the request."),
    N_("error.bad_request", "The request could not be understood."),
    N_("error.request_timeout", "The request body stopped arriving before it was complete."),
    N_("error.version_not_supported", "Only HTTP/1.0 and HTTP/1.1 requests are served here."),
    N_("error.coding_not_implemented", "A request body is accepted in the chunked transfer coding alone."),
    N_("error.uri_too_long", "The request target is longer than this server accepts."),
    N_("405.detail", "This method is not allowed here. The Allow header lists the ones that are."),
    N_("error.no_route", "No route is configured for this host, path and method."),
    N_("error.body_too_large", "The request body is larger than this route accepts."),
    N_("error.upstream_error", "The service behind this address could not be reached."),
    N_("error.connection_refused", "The service behind this address refused the connection."),
    N_("error.connection_timeout", "The service behind this address did not accept a connection in time."),
    N_("error.response_timeout", "The service behind this address did not answer in time."),
    N_("error.response_malformed", "The service behind this address sent a response that is not valid HTTP."),
    N_("error.response_incomplete", "The service behind this address closed the connection before answering."),
    N_("error.response_too_large", "The service behind this address sent response headers that are too large."),
    N_("error.upgrade_failed", "The service behind this address did not accept the WebSocket upgrade."),
    N_("error.upgrade_refused", "The service behind this address refused the WebSocket upgrade."),
    N_("error.tls_certificate", "The service's TLS certificate was not accepted."),
    N_("error.tls_protocol", "The TLS handshake with the service failed."),
    N_(
        "error.connection_limit",
        "The service behind this address is busy with as many requests as it takes. Try again shortly.",
    ),
    N_(
        "error.precondition_failed",
        "The resource changed since you read it: your If-Match does not match its current ETag. "
        "Fetch it again, reapply your change, and retry with If-Match set to the new ETag (current_etag).",
    ),
    N_(
        "error.precondition_unverifiable",
        "This resource's current version cannot be checked by the proxy, so no If-Match can match it "
        "and the write was not forwarded.",
    ),
    N_(
        "error.precondition_required",
        "This resource only accepts conditional writes. Fetch it (GET), then retry with If-Match "
        "set to the ETag you received (or If-None-Match: * to create it).",
    ),
    N_("error.lock_timeout", "Other writes to this resource are in progress and did not finish in time. Retry shortly."),
    N_(
        "error.lock_unavailable",
        "The lock that keeps writes to this resource in order is unavailable, "
        "so the write was not forwarded. Retry shortly.",
    ),
    N_(
        "error.lock_lost",
        "The lock on this resource expired before the write could be forwarded, so it was not. Retry shortly.",
    ),
    N_(
        "error.check_refused",
        "The current version of this resource could not be read to check the write's precondition, "
        "so the write was not forwarded.",
    ),
)
_PROXY_DETAILS = {str(text): text for text in PROXY_DETAILS}


def own(detail: str) -> str:
    """`detail` as the proxy's own Text when it is one of PROXY_DETAILS, else unchanged.

    >>> own("The TLS handshake with the service failed.").id
    'error.tls_protocol'
    """
    return _PROXY_DETAILS.get(detail, detail)
