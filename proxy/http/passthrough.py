"""An upstream response the proxy does not rewrite, streamed to the client as it arrives.

Nothing is buffered: each chunk the upstream connection hands over is written
to the client before the next is read. When the whole body came with the head
(small responses), head and body leave in one write.
"""

from __future__ import annotations

import logging
from typing import Awaitable

from aiohttp import web

from ..core import errors, headers
from ..core.settings import UpstreamSettings
from ..observe.accesslog import Exchange
from ..upstream import Response, map_failure
from .aiohttp_responses import DeferredHeadResponse, WrittenResponse, no_body, write_whole

log = logging.getLogger("errorproxy")


class PassthroughResponse(DeferredHeadResponse):
    """An upstream response on its way to the client."""

    format = "passthrough"


async def stream_back(request: web.BaseRequest, upstream_response: Response, exchange: Exchange,
                      upstream: UpstreamSettings, prefix: bytes = b"", complete: bool = False,
                      etag: str | None = None) -> web.StreamResponse:
    """Stream `upstream_response` to the client; `prefix` was read already (and is all of it, if `complete`).

    `etag` replaces the upstream's ETag (the conflict guard's, for a representation that had none).
    """
    version = headers.version_name(upstream_response.version)
    if not complete and upstream_response.complete:
        prefix += upstream_response.take()  # all there: head and body go in one write
        complete = True
    if complete and _by_length(request.method, upstream_response):
        try:
            whole = await _send_whole(request, upstream_response, prefix, version, etag)
        except ConnectionError:
            log.info("client went away during the response request_id=%s", exchange.request_id)
            upstream_response.close()
            return WrittenResponse(upstream_response.status, upstream_response.reason, False, 0)
        exchange.bytes_out += len(prefix)
        upstream_response.release()
        return whole
    response = PassthroughResponse(
        status=upstream_response.status,
        reason=upstream_response.reason,
        headers=headers.downstream_response_headers(upstream_response.headers, version),
    )
    if etag is not None:
        response.headers["ETag"] = etag
    try:
        await response.prepare(request)
        # The client has its status: a cut from here on (it leaves, a stop) is logged with it, as sent.
        exchange.status, exchange.format = response.status, response.format
        if prefix:
            await response.write(prefix)
            exchange.bytes_out += len(prefix)
        else:
            response.send_head()  # the body may take a while: the client gets the head now
        while True:
            try:
                chunk = await upstream_response.read()
            except Exception as exc:
                _failed(request, upstream_response, exchange, upstream, exc)
                return response
            if not chunk:
                break
            await response.write(chunk)
            exchange.bytes_out += len(chunk)
        await response.write_eof()
    except ConnectionError:
        log.info("client went away during the response request_id=%s", exchange.request_id)
        upstream_response.close()
        return response
    upstream_response.release()
    return response


def _by_length(method: str, upstream_response: Response) -> bool:
    """Whether the upstream framed its body by length, or sent none: then so does the proxy.

    A chunked body stays chunked, however quickly it came: its sender chose to stream it.
    """
    upstream_headers = upstream_response.headers
    if "Transfer-Encoding" in upstream_headers:
        return False
    return "Content-Length" in upstream_headers or no_body(method, upstream_response.status)


def _send_whole(request: web.BaseRequest, upstream_response: Response, body: bytes, version: str,
                etag: str | None) -> Awaitable[web.StreamResponse]:
    """A response that arrived whole: head and body leave in one write, framed by its length (to be awaited)."""
    upstream_headers = upstream_response.headers
    fields = headers.downstream_fields(upstream_headers, version)  # the upstream's Content-Length, where it was
    if etag is not None:
        fields = [field for field in fields if field[0].lower() != "etag"]
        fields.append(("ETag", etag))
    return write_whole(request, upstream_response.status, upstream_response.reason, fields, body,
                       date="Date" not in upstream_headers, framed=True)


def _failed(request: web.BaseRequest, upstream_response: Response, exchange: Exchange,
            upstream: UpstreamSettings, exc: Exception) -> None:
    """The body failed half-way, with the head sent: the only honest signal left is to cut the
    client's connection, so it cannot take a truncated body for a whole one."""
    if isinstance(exc, errors.ProxyError):
        # The client's own request body failed (stalled, malformed): not the upstream's doing.
        log.info("request body failed during the response: %s request_id=%s", exc.title, exchange.request_id)
    else:
        map_failure(exc, upstream, exchange.request_id)
    upstream_response.close()
    _abort(request)


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
