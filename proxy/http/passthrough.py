"""An upstream response the proxy does not rewrite, streamed to the client as it arrives.

Nothing is buffered: each chunk the upstream connection hands over is written
to the client before the next is read. When the whole body came with the head
(small responses), head and body leave in one write.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..core import errors, headers
from ..core.settings import UpstreamSettings
from ..observe.accesslog import Exchange
from ..upstream import Response, map_failure
from .aiohttp_private import DeferredHeadResponse

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
    version = "%d.%d" % upstream_response.version
    response = PassthroughResponse(
        status=upstream_response.status,
        reason=upstream_response.reason,
        headers=headers.downstream_response_headers(upstream_response.headers, version),
    )
    if etag is not None:
        response.headers["ETag"] = etag
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
            response.send_head()  # the body may take a while: the client gets the head now
        while True:
            try:
                chunk = await upstream_response.read()
            except Exception as exc:
                # Headers are gone already: the only honest signal left is
                # to abort, so the client cannot take a truncated body as whole.
                if isinstance(exc, errors.ProxyError):
                    # The client's own request body failed (stalled, malformed): not the upstream's doing.
                    log.info("request body failed during the response: %s request_id=%s",
                             exc.title, exchange.request_id)
                else:
                    map_failure(exc, upstream, exchange.request_id)
                upstream_response.close()
                _abort(request)
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


def _abort(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
