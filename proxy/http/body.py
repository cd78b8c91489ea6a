"""The client's request body, streamed to the upstream as it arrives, within the route's cap."""

from __future__ import annotations

from typing import AsyncIterator

from aiohttp import hdrs, web

from ..core import errors

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class RequestBody:
    """The body as an async stream of chunks; more than `limit` bytes raise BodyTooLarge."""

    def __init__(self, request: web.BaseRequest, limit: int | None) -> None:
        self.request = request
        self.limit = limit

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
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
                raise errors.BodyTooLarge()
            yield chunk
