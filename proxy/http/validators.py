"""ETags on a guarded route's responses: derived from what the upstream sent, 304 when unchanged.

    derive(concurrency, upstream_response)   -> Derived(etag, raw, complete): the ETag, and the body bytes
                                                read to find it (to be sent on, not read again)
    fetch_current(...)                       -> Current: the guard's own GET of a resource
    not_modified_response(...)               -> 304 with the headers RFC 9110 §15.4.5 keeps

A representation is read, so buffered, only up to `max_body`, and only when
its ETag must come from its bytes (`etag: body` or `pointer:`). One announced
larger is not read at all; one without a length is read until `max_body` is
passed, and then what was read is sent on with the rest, streamed, without
an ETag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from ..core import guard_errors
from ..core.etag import EntityTag
from ..core.headers import actionable, downstream_response_headers
from ..core.pointer import MISSING
from ..core.preconditions import Current, etag_from_body, etag_from_header, parse_json, upstream_etag
from ..core.rewrite import decode_body
from ..core.guard_settings import Concurrency
from ..core.settings import Route
from ..observe.accesslog import Exchange
from ..upstream import Response, Upstreams, read_capped
from .passthrough import PassthroughResponse

log = logging.getLogger("errorproxy.guard")

# What a 304 carries of the 200 it stands for (RFC 9110 §15.4.5); Via is the proxy's own.
_NOT_MODIFIED_KEEPS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary", "via"})
_DRAIN = 64 * 1024  # an unwanted body this small is read off so its connection can be reused


@dataclass(slots=True)
class Derived:
    etag: EntityTag | None
    raw: bytes = b""  # body bytes read to find the ETag (all of it when `complete`)
    complete: bool = False
    own: bool = False  # the upstream's own strong ETag
    why_none: str = ""


async def derive(concurrency: Concurrency, response: Response) -> Derived:
    """The ETag of the representation in `response` (2xx), reading its body only if it must."""
    own = upstream_etag(response.headers)
    if own is not None:
        return Derived(own, own=True)
    source = concurrency.etag
    if source.kind == "header":
        etag = etag_from_header(source, response.headers)
        return Derived(etag, why_none="" if etag else f"the upstream sent no {source.name} header")
    cap = concurrency.max_body
    too_large = f"its representation is larger than max_body ({cap} bytes)"
    length = response.content_length
    if length is not None and length > cap:
        return Derived(None, why_none=too_large)
    raw, complete = await read_capped(response, cap)
    if not complete:
        return Derived(None, raw, False, why_none=too_large)
    body = decode_body(raw, response.headers.get("Content-Encoding", ""), cap)
    if body is None:
        return Derived(None, raw, True, why_none="its content coding could not be undone within max_body")
    document = parse_json(body) if source.kind == "pointer" else MISSING
    etag = etag_from_body(source, body, document)
    return Derived(etag, raw, True, why_none="" if etag else f"its representation has no version at {source.name}")


def check_headers(outgoing: CIMultiDict[str], fencing_header: str | None) -> CIMultiDict[str]:
    """The headers of the guard's own GET: the write's, credentials and all, less what describes
    its body, its preconditions, a method override, or a content coding (ETags hash the decoded bytes)."""
    dropped = {"transfer-encoding", "expect", "range", "accept-encoding", "x-http-method-override",
               "x-http-method", "x-method-override", (fencing_header or "").lower()}
    out = CIMultiDict((name, value) for name, value in outgoing.items()
                      if not name.lower().startswith(("content-", "if-")) and name.lower() not in dropped)
    out["Accept-Encoding"] = "identity"
    return out


async def fetch_current(upstreams: Upstreams, route: Route, target: str, headers: CIMultiDict[str],
                        request_id: str) -> Current:
    """GET `target` as the client would (its credentials in `headers`) and say what is there.

    404 and 410 mean there is nothing; any other non-2xx answer is the
    client's to see (`guard_errors.CheckRefused`: a 401 with its challenge, a 503
    with its Retry-After), since the guard cannot tell what the resource holds.
    """
    concurrency = route.concurrency
    assert concurrency is not None
    response = await upstreams.send(route.upstream, "GET", target, CIMultiDict(headers), request_id=request_id)
    try:
        status = response.status
        if 200 <= status < 300:
            derived = await derive(concurrency, response)
            current = Current(exists=True, etag=derived.etag, own=derived.own, why_none=derived.why_none)
        elif status in (404, 410):
            current = Current(exists=False)
        else:
            log.info("conflict guard: the upstream answered its GET %s with %d request_id=%s",
                     target.partition("?")[0], status, request_id)
            raise guard_errors.CheckRefused(status, tuple(actionable(response.headers)))
        await discard(response)
        return current
    except BaseException:
        response.close()
        raise


async def discard(response: Response) -> None:
    """Done with `response`: its connection goes back to the pool if what is left is small."""
    if not response.complete and (response.content_length or 0) > _DRAIN:
        response.close()
        return
    _, complete = await read_capped(response, _DRAIN)
    if complete:
        response.release()
    else:
        response.close()


async def not_modified_response(request: web.BaseRequest, response: Response, etag: EntityTag,
                                exchange: Exchange) -> web.StreamResponse:
    """304 Not Modified for a GET or HEAD whose If-None-Match names `etag`; the upstream's body is dropped."""
    await discard(response)
    version = "%d.%d" % response.version
    kept = downstream_response_headers(response.headers, version)
    headers = CIMultiDict((name, value) for name, value in kept.items() if name.lower() in _NOT_MODIFIED_KEEPS)
    headers["ETag"] = str(etag)
    answer = PassthroughResponse(status=304, headers=headers)
    await answer.prepare(request)
    await answer.write_eof()
    return answer
