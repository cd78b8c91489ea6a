"""The conflict guard: optimistic concurrency for upstreams that have none, as a request-side stage.

    ticket = await guard.admit(request, route, target, outgoing, exchange)   # before forwarding
        GET, HEAD   -> a read ticket (no lock)
        a write     -> 428 / 400, or: lock the resource, GET it, compare its ETag with If-Match
                       (412, or 409) and If-None-Match, confirm the lock -> a write ticket, lock held
    response = await ticket.answer(request, upstream_response, exchange)     # None: the usual path
        read        -> the representation with its ETag, or 304 Not Modified
        write 2xx   -> the write's response with the new ETag (from it, or a GET under the lock)
    await ticket.release()                                                   # after the response is sent

The lock is held from before the guard's GET until the write's response has
been streamed to the client, so no other write through the proxy (of this
process, or of any replica with `lock: redis://...`) can land between the
comparison and the write. A client that leaves before the upstream answered
leaves the lock held until it does (`Ticket.send`): its write may still land.
Every refusal is a `ProxyError`, rendered like any other, logged with the
request id and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable

from aiohttp import hdrs, web
from multidict import CIMultiDict

from ..core import errors, guard_errors
from ..core.etag import Condition, parse_condition
from ..core.preconditions import (
    Current, Verdict, describe, evaluate_write, not_modified, resource_key, upstream_etag,
)
from ..core.rewrite import body_cap
from ..core.guard_settings import Concurrency
from ..core.settings import Route
from ..locks import Held, Locks
from ..observe import metrics
from ..observe.accesslog import Exchange
from ..upstream import Response, Upstreams
from .passthrough import stream_back
from .validators import check_headers, derive, fetch_current, not_modified_response

log = logging.getLogger("errorproxy.guard")

_READS = frozenset({"GET", "HEAD"})
_ETAGGED = frozenset({200, 203})  # statuses whose body is the target's representation, whole


class Guard:
    """The conflict guard of one configuration: its locks, and the upstreams its GETs go to."""

    def __init__(self, upstreams: Upstreams, locks: Locks | None = None) -> None:
        self.upstreams = upstreams
        self.locks = locks or Locks()

    async def close(self) -> None:
        await self.locks.close()

    async def admit(self, request: web.BaseRequest, route: Route, target: str, outgoing: CIMultiDict[str],
                    exchange: Exchange) -> Ticket | None:
        """What the guard makes of a request to a guarded route: a ticket to go on with, None
        when it does not concern the guard (a POST, say), or a refusal (a `ProxyError`).

        `outgoing` are the headers the request will be forwarded with: the guard
        sets the fencing token there and removes a client's forged one.
        """
        concurrency = route.concurrency
        assert concurrency is not None
        method = request.method
        if concurrency.fencing_header is not None:
            outgoing.popall(concurrency.fencing_header, None)  # only the lock's holder may name a token
        if method in _READS:
            if_none_match = parse_condition(request.headers.getall(hdrs.IF_NONE_MATCH, ()))
            return Ticket(self, route, method, target, None, if_none_match, outgoing)
        if method not in concurrency.methods:
            return None
        request_id = exchange.request_id
        if_match = _condition(request, hdrs.IF_MATCH, route, request_id)
        if_none_match = _condition(request, hdrs.IF_NONE_MATCH, route, request_id)
        if if_match is None and if_none_match is None and concurrency.require_if_match:
            metrics.precondition_required(route.name)
            _refused(route, request, 428, "no If-Match", request_id)
            raise guard_errors.PreconditionRequired()
        held = await self._lock(route, concurrency, resource_key(concurrency.key, target), request, request_id)
        try:
            checks = check_headers(outgoing, concurrency.fencing_header)
            if if_match is not None or if_none_match is not None:
                current = await fetch_current(self.upstreams, route, target, checks, request_id)
                verdict = evaluate_write(if_match, if_none_match, current)
                if verdict is not Verdict.PROCEED:
                    raise _refusal(verdict, route, concurrency, current, request, request_id)
                if not current.own:
                    # The proxy's own ETag, which the upstream has never seen: checked here, not sent on.
                    outgoing.popall(hdrs.IF_MATCH, None)
                    outgoing.popall(hdrs.IF_NONE_MATCH, None)
            await held.confirm()  # still ours, right before the write leaves
            token = held.fencing_token
            if token is not None and concurrency.fencing_header is not None:
                outgoing[concurrency.fencing_header] = str(token)
            return Ticket(self, route, method, target, held, None, checks)
        except guard_errors.LockLost:
            _refused(route, request, 503, "the lock's lease ran out before forwarding", request_id)
            await held.release()
            raise
        except BaseException:
            await held.release()
            raise

    async def _lock(self, route: Route, concurrency: Concurrency, resource: str, request: web.BaseRequest,
                    request_id: str) -> Held:
        started = time.perf_counter()  # not loop.time(): uvloop's is cached to the millisecond
        try:
            held = await self.locks.acquire(concurrency, f"{route.upstream.name}:{resource}", request_id)
        except (guard_errors.LockTimeout, guard_errors.LockUnavailable) as refusal:
            metrics.lock_waited(route.name, time.perf_counter() - started)
            reason = "lock store unreachable" if isinstance(refusal, guard_errors.LockUnavailable) else refusal.detail
            _refused(route, request, refusal.status, reason, request_id)
            raise
        metrics.lock_waited(route.name, time.perf_counter() - started)
        return held


class Ticket:
    """A guarded request on its way: what `answer` needs, and the lock a write holds until `release`."""

    __slots__ = ("guard", "route", "method", "target", "held", "if_none_match", "checks")

    def __init__(self, guard: Guard, route: Route, method: str, target: str, held: Held | None,
                 if_none_match: Condition | None, checks: CIMultiDict[str]) -> None:
        self.guard = guard
        self.route = route
        self.method = method
        self.target = target
        self.held = held
        self.if_none_match = if_none_match
        self.checks = checks  # headers for a GET of the resource as the client would make it

    async def answer(self, request: web.BaseRequest, response: Response, exchange: Exchange) -> web.StreamResponse | None:
        """The response, sent, when the guard has something to add; None: the handler goes on as usual."""
        route = self.route
        if response.status not in _ETAGGED and not (self.held is not None and 200 <= response.status < 300):
            return None
        if body_cap(route.errors, response.status, response.content_type) is not None:
            return None  # a 200 that may be rewritten (success_false): left to the usual path
        if self.method in _READS:
            return await self._read(request, response, exchange)
        return await self._written(request, response, exchange)

    async def _read(self, request: web.BaseRequest, response: Response, exchange: Exchange) -> web.StreamResponse | None:
        concurrency = self.route.concurrency
        assert concurrency is not None
        if self.method == "HEAD" and concurrency.etag.kind != "header" and upstream_etag(response.headers) is None:
            # A HEAD has no body to hash: the representation is fetched to find its ETag.
            current = await fetch_current(self.guard.upstreams, self.route, self.target, self.checks,
                                          exchange.request_id)
            etag, raw, complete = current.etag, b"", False
        else:
            derived = await derive(concurrency, response)
            if derived.own and not not_modified(self.if_none_match, derived.etag):
                return None  # the upstream's own strong ETag: sent as it is
            etag, raw, complete = derived.etag, derived.raw, derived.complete
        if etag is not None and not_modified(self.if_none_match, etag):
            return await not_modified_response(request, response, etag, exchange)
        return await stream_back(request, response, exchange, self.route.upstream, raw, complete,
                                 etag=str(etag) if etag is not None else None)

    async def _written(self, request: web.BaseRequest, response: Response,
                       exchange: Exchange) -> web.StreamResponse | None:
        concurrency = self.route.concurrency
        assert concurrency is not None
        if self.method == "DELETE" or response.headers.get("ETag") is not None:
            return None  # nothing left to tag, or the upstream tagged it
        etag = None
        if concurrency.etag.kind == "header":
            etag = (await derive(concurrency, response)).etag
        if etag is None:
            # The new state, read under the same lock: nobody else can have changed it since.
            try:
                etag = (await fetch_current(self.guard.upstreams, self.route, self.target, self.checks,
                                            exchange.request_id)).etag
            except errors.ProxyError as exc:
                log.info("conflict guard: no ETag for the written %s (%s) request_id=%s",
                         request.path, exc.detail, exchange.request_id)
        if etag is None:
            return None
        return await stream_back(request, response, exchange, self.route.upstream, etag=str(etag))

    async def release(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            await held.release()

    async def send(self, sending: Awaitable[Response]) -> Response:
        """The upstream's response to the write `sending` sends. A client that leaves before it
        does not take the lock with it: its write may still land, so the lock is kept until the
        upstream has answered (or failed), in a task of its own, and only then released."""
        if self.held is None:
            return await sending
        task = asyncio.ensure_future(sending)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            held, self.held = self.held, None
            settling = asyncio.ensure_future(_settle(task, held))
            _settling.add(settling)
            settling.add_done_callback(_settling.discard)
            raise


_settling: set[asyncio.Task] = set()  # writes whose clients left, each holding its lock until its answer


async def _settle(task: asyncio.Future[Response], held: Held) -> None:
    try:
        response = await task
    except BaseException:  # failed, or cut by a stop: either way the write is over
        pass
    else:
        response.close()  # nobody reads it
    finally:
        await held.release()


def _condition(request: web.BaseRequest, name: str, route: Route, request_id: str) -> Condition | None:
    values = request.headers.getall(name, ())
    if not values:
        return None
    condition = parse_condition(values)
    if condition is None:
        _refused(route, request, 400, f"malformed {name}", request_id)
        raise errors.BadRequest(f'The {name} header is not "*" or a list of entity tags ("v7", W/"v7").')
    return condition


def _refusal(verdict: Verdict, route: Route, concurrency: Concurrency, current: Current,
             request: web.BaseRequest, request_id: str) -> errors.ProxyError:
    if verdict is Verdict.UNVERIFIABLE:
        _refused(route, request, 412, f"cannot check: {current.why_none}", request_id)
        log.warning("conflict guard: %s %s cannot be checked: %s request_id=%s",
                    request.method, request.path, current.why_none, request_id)
        return guard_errors.PreconditionUnverifiable(
            f"The proxy checks writes to this resource against {describe(concurrency)}, but {current.why_none}, "
            "so no If-Match can match it and the write was not forwarded.")
    metrics.conflict_prevented(route.name)
    etag = str(current.etag) if current.etag is not None else None
    _refused(route, request, concurrency.on_mismatch, f"{verdict.value}, current ETag {etag}", request_id)
    if verdict is Verdict.GONE:
        detail = ("The resource does not exist (any more), so your If-Match cannot hold. Fetch it to see its "
                  "state; to create it, send the write with If-None-Match: * instead.")
    elif verdict is Verdict.EXISTS:
        detail = ("The resource already exists (or is still in the state your If-None-Match names), so the write "
                  "was not applied. Fetch it, reapply your change, and retry with If-Match set to its ETag "
                  "(current_etag).")
    else:
        detail = None  # the class's own: changed since read, fetch, reapply, retry with If-Match
    return guard_errors.PreconditionFailed(detail, status=concurrency.on_mismatch, current_etag=etag)


def _refused(route: Route, request: web.BaseRequest, status: int, why: str, request_id: str) -> None:
    log.info("conflict guard refused %s %s on route %s: %d (%s) request_id=%s",
             request.method, request.path, route.name, status, why, request_id)
