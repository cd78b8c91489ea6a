"""The client's request body, streamed to the upstream as it arrives, within the route's cap.

Whatever goes wrong reading it is the client's doing, and leaves as a
`ProxyError`, which `Upstreams.send` passes on unchanged (nothing is counted
against the upstream, whose request is cancelled):

    more than the route's max_body_size        BodyTooLarge    413
    nothing for server.body_timeout            RequestTimeout  408
    framing aiohttp could not parse            BadRequest      400  (a chunk-size line that is not hex, ...)
    the client went away                       ClientGone      499
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from aiohttp import hdrs, web
from aiohttp.http import HttpProcessingError

from ..core import errors

log = logging.getLogger("errorproxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class RequestBody:
    """The body as an async stream of chunks.

    More than `limit` bytes raise BodyTooLarge; waiting longer than `timeout`
    seconds (0: no limit) for the next bytes raises RequestTimeout, as
    nginx's client_body_timeout: the gap between two reads, not the whole
    upload, is bounded, so a slow but steady upload goes through.
    """

    def __init__(self, request: web.BaseRequest, limit: int | None, timeout: float = 0.0,
                 request_id: str = "") -> None:
        self.request = request
        self.limit = limit
        self.timeout = timeout
        self.request_id = request_id

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        request = self.request
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue" and request.version >= (1, 1):
            # Sent only now that the upstream is connected and has our headers,
            # so a client never uploads a body that would only be refused. An
            # HTTP/1.0 client's expectation is ignored, and it gets no 1xx (RFC 9110 §10.1.1, §15.2).
            await request.writer.write(_CONTINUE)
        received = 0
        while chunk := await self._read():
            received += len(chunk)
            if self.limit is not None and received > self.limit:
                raise errors.BodyTooLarge()
            yield chunk

    async def _read(self) -> bytes:
        content = self.request.content
        try:
            if self.timeout > 0:
                async with asyncio.timeout(self.timeout):
                    return await content.readany()
            return await content.readany()
        except TimeoutError:
            log.info("request body from %s stalled: nothing for %gs (server.body_timeout) request_id=%s",
                     self.request.remote, self.timeout, self.request_id)
            raise errors.RequestTimeout() from None
        except (HttpProcessingError, web.RequestPayloadError) as exc:
            # aiohttp's text quotes the client's bytes: logged, never sent.
            log.info("request body from %s is malformed: %r request_id=%s",
                     self.request.remote, str(exc)[:300], self.request_id)
            raise errors.BadRequest("The request body's framing is malformed (a chunk-size line, say).") from None
        except ConnectionResetError:
            raise errors.ClientGone() from None
