"""The conflict guard's refusals (`http.guard`, `locks`), each a `ProxyError` with its status.

    PreconditionFailed          412     (none)  or the route's on_mismatch, 409; current_etag + ETag
    PreconditionUnverifiable    412     (none)  the current representation has no ETag to compare
    PreconditionRequired        428     (none)
    LockTimeout                 503     (none)  Retry-After: the resource's lock was held too long
    LockUnavailable             503     proxy_internal_error  Retry-After: the lock store is unreachable
    LockLost                    503     proxy_internal_error  Retry-After: the lease ran out before forwarding
    CheckRefused                the upstream's status: its answer to the guard's GET (401, 403, 5xx)
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import ProxyError


class PreconditionFailed(ProxyError):
    """A guarded write whose If-Match or If-None-Match does not hold for the current representation.

    `status` is the route's `on_mismatch` (412, or 409 for clients written
    against 409); the current ETag, when there is one, is `current_etag` and
    the ETag header, so the client can refetch and retry at once.
    """

    title = ""  # the status's own reason phrase
    detail = ("The resource changed since you read it: your If-Match does not match its current ETag. "
              "Fetch it again, reapply your change, and retry with If-Match set to the new ETag (current_etag).")
    proxy_status = None

    def __init__(self, detail: str | None = None, *, status: int = 412, current_etag: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        if current_etag is not None:
            self.extensions = MappingProxyType({"current_etag": current_etag})
            self.keep = (("ETag", current_etag),)


class PreconditionUnverifiable(ProxyError):
    """A guarded write whose If-Match cannot be compared: the current representation has no ETag
    the proxy can compute (larger than `max_body`, or without the configured version)."""

    status = 412
    title = "Precondition Failed"
    detail = ("This resource's current version cannot be checked by the proxy, so no If-Match can match it "
              "and the write was not forwarded.")
    proxy_status = None


class PreconditionRequired(ProxyError):
    status = 428
    title = "Precondition Required"
    detail = ("This resource only accepts conditional writes. Fetch it (GET), then retry with If-Match "
              "set to the ETag you received (or If-None-Match: * to create it).")
    proxy_status = None


class LockTimeout(ProxyError):
    """The resource's lock stayed taken (by other writes to it) past the route's `lock_timeout`,
    or more writes than `max_waiters` were already queued for it."""

    status = 503
    title = "Service Unavailable"
    detail = "Other writes to this resource are in progress and did not finish in time. Retry shortly."
    proxy_status = None
    keep = (("Retry-After", "1"),)


class LockUnavailable(ProxyError):
    """The shared lock store (Redis) could not be reached; `on_lock_unavailable: forward` opts out."""

    status = 503
    title = "Service Unavailable"
    detail = ("The lock that keeps writes to this resource in order is unavailable, "
              "so the write was not forwarded. Retry shortly.")
    keep = (("Retry-After", "5"),)


class LockLost(ProxyError):
    """The lock's lease ran out (or was taken over) before the write was forwarded: it is not sent."""

    status = 503
    title = "Service Unavailable"
    detail = "The lock on this resource expired before the write could be forwarded, so it was not. Retry shortly."
    keep = (("Retry-After", "1"),)


class CheckRefused(ProxyError):
    """The upstream answered the guard's GET of the resource (made with the client's credentials)
    with an error: the client gets that status and the headers it needs to act on it."""

    title = ""  # the status's own reason phrase
    detail = ("The current version of this resource could not be read to check the write's precondition, "
              "so the write was not forwarded.")
    proxy_status = None

    def __init__(self, status: int, keep: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__()
        self.status = status
        self.keep = keep
