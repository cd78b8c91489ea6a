"""RFC 9457 problem details: the one shape every error leaves in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from . import errors
from .status import reason
from .texts import N_, own


# What a client should do, per status: the fallback `detail` whenever the
# upstream gave none that is safe to show.
DEFAULT_DETAILS = {
    400: N_("400.detail", "The request could not be understood. Check its syntax and parameters, then try again."),
    401: N_("401.detail", "Authentication is required. Sign in or send valid credentials, then try again."),
    403: N_("403.detail", "You are not allowed to do this. Ask for access if you believe you should have it."),
    404: N_("404.detail", "Nothing was found at this address. Check the URL."),
    405: N_("405.detail", "This method is not allowed here. The Allow header lists the ones that are."),
    406: N_("406.detail", "None of the representations the request accepts is available."),
    408: N_("408.detail", "The request took too long to arrive. Try again."),
    409: N_(
        "409.detail",
        "The resource was changed by another request. Fetch it again, reapply your change, "
        "and retry with If-Match set to its current ETag."
    ),
    410: N_("410.detail", "This resource is gone and will not come back."),
    412: N_(
        "412.detail",
        "The resource changed since you read it, so your precondition (If-Match or "
        "If-Unmodified-Since) failed. Fetch the current version, reapply your change, "
        "and retry with its ETag."
    ),
    413: N_("413.detail", "The request body is too large."),
    414: N_("414.detail", "The URL is too long."),
    415: N_("415.detail", "The request body's media type is not supported here."),
    422: N_("422.detail", "The request was understood but its content is not valid. Correct it and try again."),
    428: N_(
        "428.detail",
        "This resource only accepts conditional changes. Fetch it, then retry with "
        "If-Match set to the ETag you received."
    ),
    429: N_("429.detail", "Too many requests. Wait before trying again (see Retry-After)."),
    500: N_(
        "500.detail",
        "Something went wrong on our side. Try again later; if it persists, contact support with the request id."
    ),
    501: N_("501.detail", "This is not supported here."),
    502: N_(
        "502.detail",
        "The service behind this address sent an invalid response or could not be reached. Try again shortly."
    ),
    503: N_("503.detail", "The service is temporarily unavailable. Try again later (see Retry-After)."),
    504: N_("504.detail", "The service behind this address did not answer in time. Try again shortly."),
}
# The detail of a 4xx status without one of its own above.
_FALLBACK = N_("4xx.detail", "The request could not be completed.")
_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "request_id"})
# Statuses whose answer is "fetch the current version": they carry its ETag.
CONCURRENCY_STATUSES = frozenset({409, 412, 428})


def default_detail(status: int) -> str:
    if status in DEFAULT_DETAILS:
        return DEFAULT_DETAILS[status]
    if status >= 500:
        return DEFAULT_DETAILS[500]
    return _FALLBACK


@dataclass(slots=True)
class Problem:
    """A problem about to be rendered.

    >>> Problem(status=404, detail="No route.").to_dict()
    {'type': 'about:blank', 'title': 'Not Found', 'status': 404, 'detail': 'No route.'}
    """

    status: int
    title: str = ""
    detail: str = ""
    type: str = "about:blank"
    instance: str | None = None
    request_id: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    proxy_status: str | None = None  # RFC 9209 parameters, e.g. "error=connection_refused"

    def __post_init__(self) -> None:
        if not self.title:
            self.title = reason(self.status)

    @classmethod
    def from_error(cls, error: errors.ProxyError, *, instance: str | None, request_id: str | None) -> Problem:
        return cls(
            status=error.status,
            title=error.title,
            detail=own(error.detail),  # its stock detail is translated; one written for the occasion is not
            instance=instance,
            request_id=request_id,
            proxy_status=(f"received-status={error.status}" if error.answered
                          else f"error={error.proxy_status}" if error.proxy_status else None),
            extensions=dict(error.extensions),
        )

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.instance is not None:
            body["instance"] = self.instance
        if self.request_id is not None:
            body["request_id"] = self.request_id
        for key, value in self.extensions.items():
            if key not in _MEMBERS:  # an extension never stands in for a standard member
                body.setdefault(key, value)
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())  # compact UTF-8, as json.dumps(ensure_ascii=False, separators=(",", ":"))
