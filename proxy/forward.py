"""The request handler: match a route, forward the request, stream the answer back.

Nothing is buffered: the request body is streamed to the upstream as the client
sends it, and the response body to the client as the upstream sends it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import hdrs, web
from yarl import URL

from . import errors, headers, websocket
from .problem import Problem
from .render import PassthroughResponse, render
from .routing import Router, host_name, normalize_path, upstream_target
from .settings import Route, Settings
from .upstream import Pool, map_failure

log = logging.getLogger("errorproxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Body:
    """The client's request body as an async stream, with the route's size cap."""

    def __init__(self, request: web.BaseRequest, limit: int | None) -> None:
        self.request = request
        self.limit = limit
        self.too_large = False

    async def stream(self) -> AsyncIterator[bytes]:
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
        self.pool = pool or Pool(settings.upstreams)

    async def close(self) -> None:
        await self.pool.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = headers.request_id(request.headers.get("X-Request-ID"))
        try:
            return await self._forward(request, request_id)
        except errors.ProxyError as error:
            return self.error_response(request, error, request_id)

    def error_response(self, request: web.BaseRequest, error: errors.ProxyError, request_id: str) -> web.Response:
        problem = Problem.from_error(error, instance=request.path, request_id=request_id)
        response = render(problem)
        if isinstance(error, errors.BodyTooLarge):
            response.force_close()  # the rest of the body is not wanted on this connection
        return response

    async def _forward(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        path = normalize_path(request.raw_path)
        route = self.router.match(host_name(request.headers.get(hdrs.HOST)), path, request.method)
        if route is None:
            raise errors.NoRoute()
        upstream = route.upstream
        outgoing = self._upstream_headers(request, route, request_id)
        url = _upstream_url(route, upstream_target(request.raw_path, path, route.strip_prefix))
        session = self.pool.session(upstream)
        if websocket.is_upgrade(request):
            return await websocket.relay(request, session, url, outgoing, request_id, upstream)

        length = request.content_length
        if route.max_body_size is not None and length is not None and length > route.max_body_size:
            raise errors.BodyTooLarge()
        body = _Body(request, route.max_body_size) if request.body_exists else None
        try:
            upstream_response = await session.request(
                request.method,
                url,
                headers=outgoing,
                data=body.stream() if body else None,
                allow_redirects=False,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if body is not None and body.too_large:
                raise errors.BodyTooLarge() from exc
            raise map_failure(exc, upstream, request_id) from exc
        return await self._stream_back(request, upstream_response, route, request_id)

    def _upstream_headers(self, request: web.BaseRequest, route: Route, request_id: str):
        peer = request.remote
        version = f"{request.version.major}.{request.version.minor}"
        if route.host_header == "client" and hdrs.HOST in request.headers:
            host = request.headers[hdrs.HOST]
        else:
            host = route.upstream.url.raw_authority
        return headers.upstream_request_headers(
            request.headers,
            peer=peer,
            trusted=headers.is_trusted(peer, self.settings.trusted_proxies),
            host=host,
            version=version,
            request_id=request_id,
        )

    async def _stream_back(self, request, upstream_response, route: Route, request_id: str) -> web.StreamResponse:
        version = f"{upstream_response.version.major}.{upstream_response.version.minor}"
        response = PassthroughResponse(
            status=upstream_response.status,
            reason=upstream_response.reason,
            headers=headers.downstream_response_headers(upstream_response.headers, version),
        )
        try:
            await response.prepare(request)
            content = upstream_response.content
            while True:
                try:
                    chunk = await content.readany()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Headers are gone already: the only honest signal left is
                    # to abort, so the client cannot take a truncated body as whole.
                    map_failure(exc, route.upstream, request_id)
                    _abort(request)
                    return response
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            log.info("client went away during the response request_id=%s", request_id)
            upstream_response.close()
            return response
        finally:
            upstream_response.release()
        return response


def _upstream_url(route: Route, target: str) -> URL:
    base = route.upstream.url
    prefix = base.raw_path.rstrip("/")
    return URL(f"{base.scheme}://{base.raw_authority}{prefix}{target}", encoded=True)


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
