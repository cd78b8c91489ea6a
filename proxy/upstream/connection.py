"""One upstream connection: an asyncio protocol carrying one exchange at a time.

The exchange is a `response.Response`, which parses what the connection
receives. The connection knows its exchange and its owner (the pool) only by
the small interfaces below, so neither module imports the other's:

    pool ──▶ connection ◀── response
      └──────────────────────▲

A connection is reused only when its response ended exactly where its framing
said, with the request's body fully sent (`Response.release` decides).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Protocol

from . import coalesce, idle_poll
from .errors import Disconnected


class Owner(Protocol):
    """What a connection needs of its pool."""

    loop: asyncio.AbstractEventLoop

    def release(self, connection: Connection) -> None: ...  # a clean exchange ended: reuse it
    def lost(self, connection: Connection) -> None: ...  # it closed: forget it


class Exchange(Protocol):
    """What a connection needs of the response it carries."""

    body_sent: bool
    awaiting_client: bool  # the request body is waited for from the client: the upstream is not late

    async def wait_head(self) -> None: ...  # the response head is in (or it failed)
    def touch(self) -> None: ...  # a body write went out: the upstream is not idle
    def check_timeout(self) -> None: ...  # the connection's timer fired: is the upstream late?
    def feed(self, data: bytes) -> None: ...
    def lost(self, exc: Exception | None) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


class Connection(asyncio.Protocol):
    """One upstream connection; carries one exchange (a `Response`) at a time.

    Its read timer outlives each exchange: a timer armed and cancelled per
    request costs more than the request's own parsing. When it fires, the
    exchange of the moment checks whether the upstream is late, and asks for
    it again if not (`watch`); with no exchange, it stops.
    """

    __slots__ = ("_owner", "loop", "key", "transport", "response", "idle_since", "reusable", "_body_task", "_drain",
                 "_timer")

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self.loop = owner.loop
        self.key: tuple[str, int] = ("", 0)
        self.transport: asyncio.Transport | None = None
        self.response: Exchange | None = None
        self.idle_since = 0.0
        self.reusable = False
        self._body_task: asyncio.Task[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def usable(self, idle_before: float | None) -> bool:
        transport = self.transport
        return (self.reusable and transport is not None and not transport.is_closing()
                and (idle_before is None or self.idle_since > idle_before))

    def send(self, response: Exchange, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool) -> None:
        """Write the request's head, and start its body on its way; the caller then waits for the response's head."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise Disconnected("the connection closed before the request was sent")
        self.response = response
        self.reusable = False
        if body is None:
            coalesce.write(self.loop, transport, head)
        else:
            transport.write(head)  # before the body's task writes it
            self._body_task = asyncio.ensure_future(self._send_body(response, body, chunked))

    async def _send_body(self, response: Exchange, body: AsyncIterator[bytes], chunked: bool) -> None:
        try:
            chunks = body.__aiter__()
            while True:
                response.awaiting_client = True
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    response.awaiting_client = False
                transport = self.transport
                if transport is None:
                    return  # the connection is gone; the response side says why
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                response.touch()
                if self._drain is not None:
                    await self._drain
            if chunked and self.transport is not None:
                self.transport.write(b"0\r\n\r\n")
            response.body_sent = True
        except asyncio.CancelledError:
            self.close()
            raise
        except BaseException as exc:
            # The client's body failed (too large, or the client went away): the
            # upstream must not take a truncated body for a whole one.
            response.fail(exc)
            self.close()

    def watch(self, delay: float) -> None:
        """Have the exchange check for a late upstream in `delay` seconds, or sooner (a timer is armed already)."""
        if self._timer is None:
            self._timer = self.loop.call_later(delay, self._timed)

    def _timed(self) -> None:
        self._timer = None
        if self.response is not None:
            self.response.check_timeout()

    def finish(self) -> None:
        """The exchange is over: stop sending a body nobody waits for."""
        self.response = None
        task, self._body_task = self._body_task, None
        if task is not None and not task.done():
            task.cancel()
            self.reusable = False

    def release(self) -> None:
        """Its exchange ended cleanly: back to the owner for the next one."""
        self.reusable = True
        self._owner.release(self)

    def close(self) -> None:
        self.reusable = False
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        idle_poll.woke()
        response = self.response
        if response is None:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
        else:
            response.feed(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.transport = None
        self.reusable = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self.response is not None:
            self.response.lost(exc)
        self._owner.lost(self)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)


