"""The request handler: one way through for every request.

    route ─▶ Upstreams.send ─▶ decide (rewrite.body_cap) ─┬─▶ stream back as-is (passthrough)
                                                           └─▶ read up to the cap ─▶ rewrite ─▶ render
    any ProxyError on the way ──────────────────────────────────────────────────────────────▶ render

Nothing is buffered that is not intercepted: the request body is streamed to
the upstream as the client sends it, and the response body to the client as
the upstream sends it. Each stage hands its result to the next; the exchange
record travels with the request as an argument and is logged and counted
once the response is decided.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from functools import partial

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy, istr

from ..core import errors, headers, trace
from ..core.problem import Problem
from ..core.rewrite import body_cap, rewrite
from ..core.routing import Router, host_of, normalize_path, split_target, upstream_target
from ..core.settings import Route, Settings
from ..locks import Locks
from ..observe import metrics
from ..observe.accesslog import AccessLog, Exchange
from ..upstream import Response, Upstreams, read_capped
from . import cors, hops, maintenance, websocket
from .aiohttp_responses import write_interim, write_rendered
from .body import RequestBody
from .guard import Guard
from .pages import Pages
from .passthrough import stream_back
from .render import Origin, ProblemResponse, Shape, render

log = logging.getLogger("errorproxy")

_TRACEPARENT = istr("traceparent")  # folded once, not at each lookup


class Proxy:
    """Everything a request needs, fixed for its lifetime: settings, routes, upstreams, pages."""

    def __init__(self, settings: Settings, upstreams: Upstreams | None = None,
                 switches: maintenance.Switches | None = None) -> None:
        self.settings = settings
        self.router = Router(settings.routes)
        self.upstreams = upstreams or Upstreams()
        # Maintenance switched on at run time: a reload hands them to the next Proxy (reload.Reloader).
        self.switches = switches or maintenance.Switches.from_env()
        self.guard = Guard(self.upstreams, Locks.from_routes(settings.routes))
        self.pages = Pages(settings.brand, settings.templates_dir, settings.messages)
        self.access_log = AccessLog(settings.ops.access_log)
        self._default_shape = Shape(settings.errors, self.pages)
        self._shapes = {route.name: Shape(route.errors, self.pages, route.template) for route in settings.routes}

    async def close(self) -> None:
        await self.guard.close()
        await self.upstreams.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        incoming, method = request.headers, request.method  # each a descriptor call when asked
        request_id = headers.request_id(incoming.get(headers.X_REQUEST_ID))
        try:
            # An absolute-form target's authority is the host asked for (RFC 9112 §3.2.2), not Host.
            authority, target = split_target(request.raw_path)
        except ValueError:
            authority, target = None, None
        host = authority if authority is not None else incoming.get(hdrs.HOST)
        name = host_of(host)  # None: Host is not a host[:port]
        path = normalize_path(target) if target is not None else ""
        route = self.router.match(name or "", path, method) if target is not None else None
        traceparent = incoming.getall(_TRACEPARENT, None)
        exchange = Exchange(request_id, method, target or request.raw_path, route,
                            trace.from_headers(traceparent) if traceparent else None)
        response: web.StreamResponse | None = None
        try:
            if target is None:
                raise errors.BadRequest("The request target is neither a path nor an http(s) URL with a host.")
            if name is None:
                raise errors.BadRequest("The Host header is not a host name or address with an optional port.")
            if route is None:
                raise errors.NoRoute()
            if cors.answers_preflight(route.cors, request):
                response = cors.preflight(route.cors, request, request_id)  # before maintenance: see core.cors
            else:
                maintenance.check(self.switches, route, request, self.settings.trusted_proxies)
                response = await self._forward(request, route, exchange, host=host, target=target, path=path)
        except errors.ProxyError as error:
            response = self._error(request, error, exchange, route)
        except asyncio.CancelledError:
            # The client went away, or a stop cut the request: before its response started, a 499;
            # after, the status it got stands (a stream cut short, a WebSocket ended with its connection).
            if exchange.format is None:
                exchange.status = errors.ClientGone.status
            raise
        finally:
            finish_exchange(exchange, request, response)
            metrics.observe(exchange)
            self.access_log.write(exchange)
        # Every error rendered for this request, whatever raised it. (`type() is`: a response is a
        # MutableMapping, whose isinstance goes through ABCMeta; ProblemResponse has no subclasses.)
        if type(response) is ProblemResponse:
            cors.add_headers(response, route.cors if route is not None else self.settings.cors, request)
            try:
                return await write_rendered(request, response)  # head and body in one write
            except ConnectionError:
                log.info("client went away before its error was sent request_id=%s", request_id)
                response.force_close()
        return response

    def _shape(self, route: Route | None) -> Shape:
        return self._shapes[route.name] if route is not None else self._default_shape

    def _error(self, request: web.BaseRequest, error: errors.ProxyError, exchange: Exchange,
               route: Route | None) -> ProblemResponse:
        """The proxy's own error, in the route's shape when the route rewrites proxy errors."""
        where = instance(request)
        problem = Problem.from_error(error, instance=where, request_id=exchange.request_id)
        traced(problem, exchange)
        origin: Origin = "proxy"
        if error.answered:  # the upstream's own answer (a refused handshake), whose body was never read
            origin, exchange.intercepted = "upstream", True
        shape = self._shape(route)
        if error.page is not None:
            shape = dataclasses.replace(shape, template=error.page)
        response = render(problem, shape, origin=origin, accept=request.headers.get(hdrs.ACCEPT),
                          accept_language=request.headers.get(hdrs.ACCEPT_LANGUAGE, ""),
                          method=request.method, path=where, keep=error.keep)
        if error.closes_connection:
            response.force_close()  # the client's framing is in doubt, or the rest of its body unwanted
        return response

    async def _forward(self, request: web.BaseRequest, route: Route, exchange: Exchange, *,
                       host: str | None, target: str, path: str) -> web.StreamResponse:
        """Forward to the route's upstream; `host` is the authority the client asked for, `target`
        the origin-form request target, `path` its normalized path."""
        upstream = route.upstream
        keep_host = route.host_header == "client" and host is not None
        peer = request.remote  # a transport lookup each time it is asked
        trusted_proxies = self.settings.trusted_proxies
        outgoing = headers.upstream_request_headers(
            request.headers,
            peer=peer,
            trusted=bool(trusted_proxies) and headers.is_trusted(peer, trusted_proxies),
            # Until `send` names the target each try goes to.
            host=host if keep_host and host is not None else upstream.url.raw_authority,
            version=headers.version_name(request.version),
            request_id=exchange.request_id,
            proto="https" if request.secure else "http",
            client_host=host,
            allow_underscores=self.settings.allow_underscores_in_headers,
        )
        target = upstream_target(target, path, route.strip_prefix)
        method = exchange.method  # read off the request once, by `handle`
        if method in hops.METHODS and (count := request.headers.get(hops.MAX_FORWARDS)) is not None:
            answered = await hops.answer_or_count(request, route, outgoing, count)
            if answered is not None:
                return answered  # its hops ran out here
        if websocket.is_upgrade(request):
            return await websocket.relay(request, self.upstreams, upstream, target, outgoing, exchange, keep_host)
        body = None
        if request.body_exists:
            length = request.content_length
            if route.max_body_size is not None and length is not None and length > route.max_body_size:
                raise errors.BodyTooLarge()
            body = RequestBody(request, route.max_body_size, self.settings.server.body_timeout, exchange.request_id)
        # The conflict guard (guard.py): a write's preconditions checked and its lock taken, or a refusal.
        ticket = await self.guard.admit(request, route, target, outgoing, exchange) if route.concurrency else None
        try:
            # RFC 9110 §15.2: a proxy passes interim responses on, to a client that speaks HTTP/1.1.
            interim = partial(_pass_interim, request) if request.version >= (1, 1) else None
            sending = self.upstreams.send(upstream, method, target, outgoing, body, request_id=exchange.request_id,
                                          keep_host=keep_host, interim=interim)
            upstream_response = await (sending if ticket is None else ticket.send(sending))
            exchange.answered(upstream_response.status)
            try:
                answered = await ticket.answer(request, upstream_response, exchange) if ticket is not None else None
                if answered is not None:
                    return answered  # sent with the guard's ETag, or a 304
                cap = body_cap(route.errors, upstream_response.status, upstream_response.content_type)
                if cap is None:
                    return await stream_back(request, upstream_response, exchange, upstream)
                return await self._intercept(request, upstream_response, route, exchange, cap)
            except BaseException:
                # Cancelled because the client went away, or failed half-way: the
                # connection holds an unread body, so it can neither stay checked
                # out (a leak against max_connections) nor go back to the pool.
                upstream_response.close()
                raise
        finally:
            if ticket is not None:
                await ticket.release()  # a write's lock: held until its response has been sent

    async def _intercept(self, request: web.BaseRequest, upstream_response: Response, route: Route,
                         exchange: Exchange, cap: int) -> web.StreamResponse:
        """Read the body up to the cap, then render the Problem it becomes, or pass it on unchanged."""
        raw, complete = await read_capped(upstream_response, cap)
        upstream_headers = upstream_response.headers
        where = instance(request)
        problem = rewrite(route.errors, upstream_response.status, upstream_headers, raw if complete else None,
                          instance=where, request_id=exchange.request_id)
        if problem is None:
            return await stream_back(request, upstream_response, exchange, route.upstream, raw, complete)
        traced(problem, exchange)
        if complete:
            upstream_response.release()  # read to its end: the connection goes back to the pool
        else:
            upstream_response.close()  # bytes past the cap stay unread: this connection is done
        exchange.intercepted = True
        return render(problem, self._shape(route), origin="upstream", accept=request.headers.get(hdrs.ACCEPT),
                      accept_language=request.headers.get(hdrs.ACCEPT_LANGUAGE, ""),
                      method=request.method, path=where, keep=headers.actionable(upstream_headers))


def _pass_interim(request: web.BaseRequest, status: int, reason: str, incoming: CIMultiDictProxy[str],
                  version: str) -> None:
    """An upstream's interim response (a 103 Early Hints, say) to the client, by the header rules of any response."""
    write_interim(request, status, reason, headers.downstream_fields(incoming, version))


def instance(request: web.BaseRequest) -> str:
    """A problem's `instance`: the request's path as it came, a URI reference (RFC 9457 §3.1.5):
    not percent-decoded (a decoded %3F would start a query), without query or fragment.

    >>> from aiohttp.test_utils import make_mocked_request
    >>> instance(make_mocked_request("GET", "/a%20b%2Fc%3F?x=1")), instance(make_mocked_request("GET", "http://h/p?q"))
    ('/a%20b%2Fc%3F', '/p')
    """
    raw = request.raw_path
    if not raw.startswith("/"):  # absolute form: its path
        raw = "/" + raw.partition("://")[2].partition("/")[2]
    return raw.partition("?")[0].partition("#")[0]


def traced(problem: Problem, exchange: Exchange) -> Problem:
    """`problem` with the request's trace id as `trace_id`, over any an upstream's problem had."""
    if exchange.trace_id is not None:
        problem.extensions["trace_id"] = exchange.trace_id
    return problem


def finish_exchange(exchange: Exchange, request: web.BaseRequest, response: web.StreamResponse | None) -> None:
    """Record what was decided: status, format and sizes (a rendered error is not sent yet:
    aiohttp writes it when the handler returns, without a body for HEAD)."""
    bytes_in = request.content.total_bytes or exchange.bytes_in  # a WebSocket's messages: counted as they went
    if response is None:
        exchange.finish(exchange.status, exchange.format, bytes_in)
    elif type(response) is ProblemResponse:  # see Proxy.handle
        body = response.body
        sent = len(body) if isinstance(body, bytes) and request.method != "HEAD" else 0
        exchange.finish(response.status, response.format, bytes_in, sent)
    else:
        exchange.finish(response.status, getattr(response, "format", None), bytes_in)
