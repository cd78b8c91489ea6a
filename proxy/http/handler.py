"""The request handler: match a route, forward the request, stream the answer back.

Nothing is buffered: the request body is streamed to the upstream as the client
sends it, and the response body to the client as the upstream sends it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable

from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from ..core import errors

from ..core import headers

from ..observe import metrics

from . import websocket
from ..observe.accesslog import EXCHANGE, AccessLog, Exchange
from ..upstream.pool import Response as UpstreamResponse
from ..core.rewrite import UpstreamReply, decode_body, normalize, parse, select_rule, success_false
from ..core.negotiation import FIXED, PROBLEM, Choice, choose
from .pages import Pages
from ..core.problem import Problem
from .render import PassthroughResponse, render
from ..core.routing import Router, host_name, normalize_path, upstream_target
from ..core.settings import ErrorPolicy, Route, Settings, SuccessFalse
from ..upstream.upstreams import Pool, map_failure, read_capped

log = logging.getLogger("errorproxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Body:
    """The client's request body as an async stream, with the route's size cap."""

    def __init__(self, request: web.BaseRequest, limit: int | None) -> None:
        self.request = request
        self.limit = limit
        self.too_large = False
        self.started = False  # once set, the body is (being) consumed: the request cannot be sent again

    async def stream(self) -> AsyncIterator[bytes]:
        self.started = True
        request = self.request
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            # Sent only now that the upstream is connected and has our headers,
            # so a client never uploads a body that would only be refused.
            await request.writer.write(_CONTINUE)
        received = 0
        content = request.content
        while chunk := await content.readany():
            received += len(chunk)
            if self.limit is not None and received > self.limit:
                self.too_large = True
                raise errors.BodyTooLarge()
            yield chunk


class Proxy:
    """Everything a request needs, fixed for its lifetime: settings, routes, pools."""

    def __init__(self, settings: Settings, pool: Pool | None = None) -> None:
        self.settings = settings
        self.router = Router(settings.routes)
        self.pool = pool or Pool()
        self.pages = Pages(settings.brand, settings.templates_dir)
        self.access_log = AccessLog(settings.ops.access_log)

    async def close(self) -> None:
        await self.pool.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = headers.request_id(request.headers.get("X-Request-ID"))
        path = normalize_path(request.raw_path)
        route = self.router.match(host_name(request.headers.get(hdrs.HOST)), path, request.method)
        exchange = request[EXCHANGE] = Exchange(request_id, request.method, request.raw_path, route)
        response: web.StreamResponse | None = None
        try:
            if route is None:
                raise errors.NoRoute()
            response = await self._forward(request, route, path, request_id)
        except errors.ProxyError as error:
            response = self.error_response(request, error, request_id, route)
        except asyncio.CancelledError:
            exchange.status = errors.ClientGone.status  # the client went away, or a stop cut the request
            raise
        finally:
            exchange.finish(request, response)
            metrics.observe(exchange)
            self.access_log.write(exchange)
        return response

    def error_response(self, request: web.BaseRequest, error: errors.ProxyError, request_id: str,
                       route: Route | None = None) -> web.Response:
        """The proxy's own error, in the route's shape when the route rewrites proxy errors."""
        policy = route.errors if route is not None else self.settings.errors
        problem = Problem.from_error(error, instance=request.path, request_id=request_id)
        if "proxy" in policy.origins and policy.format != "passthrough":
            response = self._render(request, problem, policy, route)
        else:
            response = render(problem)
        if isinstance(error, errors.BodyTooLarge):
            response.force_close()  # the rest of the body is not wanted on this connection
        return response

    async def _forward(self, request: web.BaseRequest, route: Route, path: str, request_id: str) -> web.StreamResponse:
        upstream = route.upstream
        keep_host = route.host_header == "client" and hdrs.HOST in request.headers
        outgoing = self._upstream_headers(request, route, request_id, keep_host)
        aim = _aimer(outgoing, upstream_target(request.raw_path, path, route.strip_prefix), keep_host)
        if websocket.is_upgrade(request):
            return await websocket.relay(request, self.pool, aim, outgoing, request_id, upstream)
        connections = self.pool.connections(upstream)

        length = request.content_length
        if route.max_body_size is not None and length is not None and length > route.max_body_size:
            raise errors.BodyTooLarge()
        body = _Body(request, route.max_body_size) if request.body_exists else None
        try:
            upstream_response = await self.pool.send(
                upstream,
                request_id,
                lambda target: connections.request(
                    target, request.method, aim(target), outgoing, body.stream() if body else None,
                ),
                replayable=lambda: body is None or not body.started,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if body is not None and body.too_large:
                raise errors.BodyTooLarge() from exc
            raise map_failure(exc, upstream, request_id) from exc
        try:
            policy = route.errors
            status = upstream_response.status
            request[EXCHANGE].answered(status)
            if policy.intercepts(status):
                return await self._intercept(request, upstream_response, route, request_id)
            if policy.success_false is not None and status == 200 and "json" in upstream_response.content_type:
                return await self._intercept(request, upstream_response, route, request_id, legacy=policy.success_false)
            return await self._stream_back(request, upstream_response, route, request_id)
        except BaseException:
            # Cancelled because the client went away, or failed half-way: the
            # connection holds an unread body, so it can neither stay checked
            # out (a leak against max_connections) nor go back to the pool.
            upstream_response.close()
            raise

    async def _intercept(self, request: web.BaseRequest, upstream_response: UpstreamResponse, route: Route,
                         request_id: str, legacy: SuccessFalse | None = None) -> web.StreamResponse:
        """Read the error body up to the cap, then rewrite it, or pass it on if no rule claims it."""
        policy = route.errors
        cap = legacy.max_body if legacy is not None else policy.max_error_body
        raw, complete = await read_capped(upstream_response, cap)
        upstream_headers = upstream_response.headers
        body = decode_body(raw if complete else None, upstream_headers.get(hdrs.CONTENT_ENCODING, ""), cap)
        reply = UpstreamReply(upstream_response.status, upstream_headers, body)
        parsed = parse(reply, body)
        if legacy is not None:
            if not success_false(legacy, parsed):
                return await self._stream_back(request, upstream_response, route, request_id, raw, complete)
            rule, status = None, legacy.status
        else:
            rule, status = select_rule(policy, reply, parsed), None
            if rule is None and reply.status not in policy.intercept:
                return await self._stream_back(request, upstream_response, route, request_id, raw, complete)
        if complete:
            upstream_response.release()  # read to its end: the connection goes back to the pool
        else:
            upstream_response.close()  # bytes past the cap stay unread: this connection is done
        problem = normalize(policy, reply, parsed, rule, instance=request.path, request_id=request_id, status=status)
        request[EXCHANGE].intercepted = True
        return self._render(request, problem, policy, route, headers.actionable(upstream_headers))

    def _render(self, request: web.BaseRequest, problem: Problem, policy: ErrorPolicy, route: Route | None,
                keep: list[tuple[str, str]] | tuple = ()) -> web.Response:
        """`problem` in the format the route and the client's Accept call for."""
        choice, negotiated = _choice(policy, request)
        retry_after = next((value for name, value in keep if name.lower() == "retry-after"), None)
        return render(
            problem, choice, policy, negotiated=negotiated, keep=keep, method=request.method, path=request.path,
            html=lambda p: self.pages.render(p, route.template if route else None, retry_after),
        )

    def _upstream_headers(self, request: web.BaseRequest, route: Route, request_id: str, keep_host: bool):
        peer = request.remote
        version = f"{request.version.major}.{request.version.minor}"
        if keep_host:
            host = request.headers[hdrs.HOST]
        else:
            host = route.upstream.url.raw_authority  # until `aim` names the target each try goes to
        return headers.upstream_request_headers(
            request.headers,
            peer=peer,
            trusted=headers.is_trusted(peer, self.settings.trusted_proxies),
            host=host,
            version=version,
            request_id=request_id,
        )

    async def _stream_back(self, request: web.BaseRequest, upstream_response: UpstreamResponse, route: Route,
                           request_id: str, prefix: bytes = b"", complete: bool = False) -> web.StreamResponse:
        """Stream the upstream response to the client; `prefix` was read already (and is all, if `complete`)."""
        version = "%d.%d" % upstream_response.version
        response = PassthroughResponse(
            status=upstream_response.status,
            reason=upstream_response.reason,
            headers=headers.downstream_response_headers(upstream_response.headers, version),
        )
        exchange = request[EXCHANGE]
        try:
            if not complete and upstream_response.complete:
                prefix += await upstream_response.read()  # all there: head and body go in one write
                complete = True
            await response.prepare(request)
            if complete:
                exchange.bytes_out += len(prefix)
                await response.write_eof(prefix)
                upstream_response.release()
                return response
            if prefix:
                await response.write(prefix)
                exchange.bytes_out += len(prefix)
            else:
                response.send_headers()  # the body may take a while: the client gets the head now
            while True:
                try:
                    chunk = await upstream_response.read()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Headers are gone already: the only honest signal left is
                    # to abort, so the client cannot take a truncated body as whole.
                    map_failure(exc, route.upstream, request_id)
                    upstream_response.close()
                    _abort(request)
                    return response
                if not chunk:
                    break
                await response.write(chunk)
                exchange.bytes_out += len(chunk)
            await response.write_eof()
        except ConnectionError:
            log.info("client went away during the response request_id=%s", request_id)
            upstream_response.close()
            return response
        upstream_response.release()
        return response


def _choice(policy: ErrorPolicy, request: web.BaseRequest) -> tuple[Choice, bool]:
    """The error format, and whether it was negotiated (so the response varies on Accept)."""
    if policy.format == "auto":
        return choose(request.headers.get(hdrs.ACCEPT)), True
    return FIXED.get(policy.format, PROBLEM), False


def _aimer(outgoing: CIMultiDict[str], target: str, keep_host: bool) -> Callable[[URL], str]:
    """`aim(base)`: this request's target (path and query) at the upstream target `base`, under its base path.

    Unless the client's Host is kept, `aim` also sets `outgoing`'s Host to
    that target's authority: each try names the target it goes to.
    """

    def aim(base: URL) -> str:
        if not keep_host:
            outgoing[hdrs.HOST] = base.raw_authority
        return base.raw_path.rstrip("/") + target

    return aim


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
