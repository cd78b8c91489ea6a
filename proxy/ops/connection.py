"""One client connection: aiohttp's request handler, hardened against clients the proxy cannot trust.

aiohttp lets a client take as long as it likes to send its headers or to read
a response, and its two request parsers (llhttp in C, and a pure-Python one)
disagree on what they accept. Each connection adds:

- a header deadline (`server.header_timeout`): a request's line and headers
  must arrive whole in time, else the connection is closed;
- a send deadline (`server.send_timeout`): a write to the client may stay
  blocked (the client not reading, its window shut) this long; then the
  connection is cut, which cancels the request and closes its upstream
  connection, freeing the pool slot;
- one verdict on each request as it is parsed, whichever parser read it
  (`core.framing`): HTTP/1.0 and HTTP/1.1 only, methods in upper case and
  never CONNECT, request targets in ASCII, WebSocket handshakes without a
  body, chunk sizes within 64 bits;
- a parse error after a request was handed on ends that request's body with
  the error, so its handler answers 400 at once (llhttp would leave it
  waiting for bytes that never come) and its upstream request is cancelled;
- bytes fed to the parser one header section at a time, so llhttp does not
  drop a request pipelined behind an upgrade it ignores (`Upgrade: h2c`), and
  a broken request never takes the good ones that came before it in the same
  read with it. Only up to the first body: behind a body, in the same read,
  llhttp still drops what follows such an upgrade, and both parsers drop the
  good requests before a broken one (the same answer either way);
- bytes that came behind a refused WebSocket upgrade, which aiohttp keeps
  aside, parsed through the same checks.

Requests refused here are answered by `handle_error`, in the problem shape.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, InvalidURLError, LineTooLong, TransferEncodingError
from aiohttp.streams import StreamReader

from ..core import errors, framing
from ..core.headers import request_id
from ..core.problem import Problem
from ..core.settings import ServerSettings
from ..http import aiohttp_private as private
from ..http.aiohttp_loop import DirectStart
from ..http.render import render
from ..observe.accesslog import Exchange
from ..upstream import idle_poll
from .tuning import count_connection

log = logging.getLogger("errorproxy")


def _check_request_line(request_line: bytes) -> None:
    """What llhttp refuses and the Python parser would take: a lowercase method, a byte past ASCII in the target."""
    method, _, rest = request_line.partition(b" ")
    if not framing.method_is_valid(method):
        raise BadHttpMethod(method.decode("ascii", "backslashreplace")[:40])
    if not framing.target_is_valid(rest):
        raise InvalidURLError(f"Invalid char in url path: {rest[:60]!r}")


class ClientConnection(DirectStart):
    """One client connection: aiohttp's handler plus deadlines and one verdict on request framing."""

    __slots__ = ("_header_timeout", "_header_timer", "_header_due", "_header_due_at", "_armed_at", "_send_timeout",
                 "_send_timer", "_queue", "_body", "_carry", "_refused", "_python_parser", "_max_line", "_record",
                 "_partial")

    def __init__(self, manager: web.Server, *, limits: ServerSettings,
                 refused: Callable[[Exchange], None] | None = None, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._record = refused  # told each request answered by `handle_error`, for the access log and metrics
        self._header_timeout = limits.header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_due = False  # a request's head is awaited, by `_header_due_at`
        self._header_due_at = 0.0
        self._armed_at = 0
        self._send_timeout = limits.send_timeout
        self._max_line = limits.max_line_size
        self._send_timer: asyncio.TimerHandle | None = None
        self._queue = private.request_queue(self)  # aiohttp's, the same for the connection's life
        self._body: StreamReader | None = None  # the body of the last request parsed, until it is complete
        self._carry = b""  # the last bytes read, for a header section end split between two reads
        self._partial = False  # the last read ended inside a request's head
        self._refused = False  # a request was refused: nothing after it is parsed
        self._python_parser = private.parses_in_python(self)  # which needs chunk sizes checked; llhttp bounds them
        if self._python_parser:
            private.count_header_fields_only(self)
        private.check_request_lines(self, _check_request_line)
        private.answer_ahead_of_each_request(self)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        count_connection(1)
        self._arm()

    def data_received(self, data: bytes) -> None:
        idle_poll.woke()
        if self._refused:
            return  # the connection closes once the refusal is answered
        # A new request starts when bytes arrive while no request is being served; its
        # deadline is armed below, unless the read brought the whole head.
        starts = not self._header_due and not private.serving(self)
        parsed = 0  # requests this read completed
        # One header section a feed, up to the first body: inside a body nothing needs
        # splitting (and a large upload is not searched through).
        start = 0
        while not self._refused and ((body := self._body) is None or body.is_eof()):  # not inside a body
            end = framing.head_end(self._carry, data, start)
            if end == -1:
                break
            parsed += self._feed(data if start == 0 and end == len(data) else data[start:end])  # one head: no copy
            start = end
            if end == len(data):
                break
        if start < len(data) or not data:
            parsed += self._feed(data[start:])
        if start == len(data) and start:
            self._carry = b""  # the read ended with a head: no end of one can straddle it and the next
        else:
            self._carry = data[-3:] if len(data) >= 3 else (self._carry + data)[-3:]
        if data:
            self._partial = start < len(data) and ((body := self._body) is None or body.is_eof())
        if starts:
            if not parsed and not self._refused:
                self._arm()
        elif parsed and self._header_due:
            self._header_due = False  # its timer, if still set, finds nothing due and lapses

    def _feed(self, data: bytes) -> int:
        """Parse `data`, then check what it completed; how many requests it did (refused ones too)."""
        if self._refused:
            return 0
        queue = self._queue
        index = len(queue)
        super().data_received(data)
        parsed = len(queue) - index
        while index < len(queue):
            message, payload = queue[index]
            if isinstance(message, private.REFUSAL):
                refusal = (message, payload)
                if (isinstance(private.refusal_reason(message), LineTooLong)
                        and framing.request_line_too_long(data, self._max_line)):
                    refusal = private.refusal(414, errors.UriTooLong(), "request line too long")
            elif (verdict := framing.request_error(message.version, message.method, message.headers)) is not None:
                error, detail = verdict
                refusal = private.refusal(error.status, error, detail)
            else:
                self._body = None if payload is private.NO_BODY else payload  # None: complete, no call to ask
                index += 1
                continue
            while len(queue) > index:  # the refused request, and whatever was parsed after it
                queue.pop()
            self._refuse(refusal)
            return parsed
        # What is left of a chunk, with what this read may have taken of it, bounds its declared size.
        if self._python_parser and private.unread_chunk_size(self) + len(data) > framing.MAX_CHUNK_SIZE:
            error = TransferEncodingError("chunk size over 64 bits")
            self._refuse(private.refusal(400, error, error.message))
        return parsed

    def _refuse(self, refusal: private.QueuedRequest) -> None:
        """Answer `refusal` in place of the request whose body it broke (if not handed on yet), or after it."""
        self._refused = True
        queue = self._queue
        body, self._body = self._body, None
        if body is not None and not body.is_eof():
            for index, (_, payload) in enumerate(queue):
                if payload is body:
                    while len(queue) > index:  # never handed to the handler: the refusal is its answer
                        queue.pop()
                    break
            else:
                # Being handled: its body ends with the parse error, which the handler answers
                # with a 400. Handled already: aiohttp's lingering read of it just stops. Either
                # way it ends for good, so nothing waits on bytes that cannot be parsed.
                if private.request_in_progress(self) and body.exception() is None:
                    body.set_exception(private.refusal_reason(refusal[0]))
                body.feed_eof()
        queue.append(refusal)

    def finish_response(self, request, resp, start_time):
        # Bytes that came behind an upgrade request that was refused are parsed here, through
        # `_feed`'s checks, before aiohttp would parse them past them. (Aiohttp's own coroutine
        # is handed back to be awaited: no coroutine of ours a request.)
        tail = private.take_refused_upgrade_tail(self)
        if tail is not None:
            if tail:
                self.data_received(tail)
            private.resume_reading_if_drained(self)
        return super().finish_response(request, resp, start_time)

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._header_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._send_timer = None
        count_connection(-1)
        super().connection_lost(exc)

    # The header deadline

    # A timer armed and cancelled for every request costs more than the checks of the request
    # itself, so one timer serves the connection: arming a deadline notes when it falls and
    # sets the timer only if none is set; a timer that fires early sets itself again for what
    # is left, and one that finds nothing due lapses.

    def _arm(self) -> None:
        if self._header_timeout > 0:
            loop = private.handler_loop(self)
            self._armed_at = private.request_count(self)
            self._header_due_at = loop.time() + self._header_timeout
            self._header_due = True
            if self._header_timer is None:
                self._header_timer = loop.call_later(self._header_timeout, self._header_deadline)

    def _process_keepalive(self) -> None:
        # A request's head has begun to arrive: its header deadline applies, not keep-alive's,
        # which is for a connection with nothing on it (nginx's client_header_timeout likewise).
        if self._partial and self._header_due:
            self._keepalive_handle = None
            return
        super()._process_keepalive()

    def _header_deadline(self) -> None:
        self._header_timer = None
        if not self._header_due:
            return
        if private.request_count(self) != self._armed_at or private.request_in_progress(self):
            self._header_due = False
            return
        loop = private.handler_loop(self)
        left = self._header_due_at - loop.time()
        if left > 0:
            self._header_timer = loop.call_later(left, self._header_deadline)
            return
        self._header_due = False
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.info("closing connection from %s: request headers not complete within %ss", peer, self._header_timeout)
        self.force_close()

    # The send deadline: asyncio pauses writing while the client's buffer is full.

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timeout > 0 and self._send_timer is None:
            self._send_timer = private.handler_loop(self).call_later(self._send_timeout, self._send_deadline)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def _send_deadline(self) -> None:
        self._send_timer = None
        transport = self.transport
        if transport is not None:
            log.info("cutting connection from %s: it read nothing of the response for %gs (server.send_timeout)",
                     transport.get_extra_info("peername"), self._send_timeout)
            transport.abort()  # what is buffered for it is dropped; its request is cancelled

    def close_if_idle(self) -> None:
        """Close if waiting for a next request (aiohttp's own test for idle); else leave it be."""
        if private.waiting_for_request(self):
            self.close()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        """Requests aiohttp or `_feed` refuse get the proxy's problem shape, without raw bytes."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        rid = request_id(None)
        error: errors.ProxyError
        if isinstance(exc, errors.ProxyError):
            log.info("refused request from %s: %s (%s) request_id=%s", request.remote, exc.title, message, rid)
            error = exc
        elif status == 400:
            log.info("bad request from %s: %s request_id=%s", request.remote, message, rid)
            error = errors.BadRequest()
        else:
            log.error("internal error request_id=%s", rid, exc_info=exc)
            error = errors.ProxyError()
            error.status = status
        problem = Problem.from_error(error, instance=None, request_id=rid)
        response = render(problem, keep=error.keep)
        response.force_close()
        if self._record is not None:
            # A request refused as it was parsed has no method or target to log ("-"); aiohttp made one up.
            parsed = request.method != private.REFUSED_METHOD
            exchange = Exchange(rid, request.method if parsed else "-", request.raw_path if parsed else "-", None)
            exchange.finish(error.status, response.format, 0, len(response.body))
            self._record(exchange)
        return response
