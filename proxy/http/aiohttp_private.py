"""Every private name of aiohttp's server and client that errorproxy relies on; those of its
responses are in `aiohttp_responses`, and nowhere else.

aiohttp has no public API for these; a new release may rename any of them.
`tests/unit/test_aiohttp_private.py` is the canary: it checks each name
below (and in `aiohttp_responses`) against the installed aiohttp and fails, naming the version and the
missing attribute, before anything subtler breaks. pyproject.toml caps
aiohttp below the next minor release for the same reason: lift the cap once
the canary passes on it.

    name                                      used for
    RequestHandler._request_in_progress       header deadline: is a request being served?
    RequestHandler._messages                  header deadline: requests parsed but not yet served
    RequestHandler._request_count             header deadline: has a new request started?
    RequestHandler._waiter                    drain: is the connection idle, waiting for a request?
    RequestHandler._loop                      header deadline timers
    RequestHandler._parser                    request checks: the parser of a connection
    web_protocol._ErrInfo                     request checks: a request refused as it is parsed
    HttpRequestParserPy.parse_message         request checks: the raw request line, before it is upper-cased
    HttpParser._payload_parser (Python)       request checks: the chunk being read ...
    HttpPayloadParser._chunk_size             ... and what is left of it (no bound in the Python parser)
    RequestHandler._upgraded, _message_tail,  request checks: bytes kept aside behind an upgrade request,
      _payload_parser, _buffer_paused,          parsed (through the checks) once the upgrade is refused,
      _resume_reading_if_drained                as `RequestHandler.finish_response` would
    web.Server._kwargs, web.Server._loop      building our RequestHandler subclass
    BaseSite._server                          the sockets a site listens on (port 0 resolved)
    ClientWebSocketResponse._response         the upstream's handshake headers, for the client
    RequestHandler.start, as a whole          DirectStart: aiohttp's loop over a connection's requests, copied
                                                (the canary holds it to the source it was copied from)
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import deque
from typing import Any, Callable

from aiohttp import ClientWebSocketResponse, http_parser, web, web_protocol
from aiohttp.helpers import ceil_timeout
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler

from ..core.settings import Address
from ..upstream import coalesce


class DirectStart(RequestHandler):
    """aiohttp's request handler, each request's handler awaited in the connection's own task.

    aiohttp runs every request in a task of its own, to give it a copy of the
    context variables (aiohttp#3406); on Python 3.12 and later that task starts
    eagerly, but on 3.11 it waits for a turn of the event loop, and its end for
    another, which cost more than a small request's own work. errorproxy keeps
    no per-request context variables, and a connection serves one request at a
    time, so its loop awaits each handler directly. Cancelling the connection's
    task (the client went away, a stop) cancels the request being served, as
    before. The loop is aiohttp's own otherwise (aiohttp 3.14), line for line,
    but for two things the missing turn of the loop asks for: what a response
    holds for the end of the turn (`upstream.coalesce`) is written before the
    connection closes, and before a pipelined request is served in the same
    turn. tests/unit/test_aiohttp_private.py fails when aiohttp's loop changes.

    Measured: one system call (epoll_wait) and 10k instructions (callgrind) fewer a
    request at concurrency 1.
    """

    async def start(self) -> None:
        """aiohttp's own loop over a connection's requests (RequestHandler.start), each
        request's handler awaited in this task."""
        loop = self._loop
        manager = self._manager
        assert manager is not None
        keepalive_timeout = self._keepalive_timeout
        resp = None
        assert self._request_factory is not None
        assert self._request_handler is not None

        while not self._force_close:
            if not self._messages:
                try:
                    # wait for next request
                    self._waiter = loop.create_future()
                    await self._waiter
                finally:
                    self._waiter = None
            elif self.transport is not None:
                # Not aiohttp's: a pipelined request is served in the turn its predecessor ended, and
                # its answer may be written at once (a refusal, by aiohttp): what the predecessor's
                # answer still holds for the end of the turn goes first.
                coalesce.write_held(loop, self.transport)

            message, payload = self._messages.popleft()

            # Free a parser slot; resume reading once drained to low water so
            # pipelining keeps flowing while this request is handled.
            # no branch: _parser is only None after connection_lost, whose path
            # exits this loop, so the None case is not reachably exercisable.
            if self._parser is not None:  # pragma: no branch
                self._parser.message_consumed()
            if (
                self._buffer_paused
                and len(self._messages) <= self._msg_queue_resume_size
            ):
                self._resume_reading_if_drained()

            # time is only fetched if logging is enabled as otherwise
            # its thrown away and never used.
            start = loop.time() if self._logging_enabled else None

            manager.requests_count += 1
            writer = StreamWriter(self, loop)
            if isinstance(message, web_protocol._ErrInfo):
                # make request_factory work
                request_handler = self._make_error_handler(message)
                message = web_protocol.ERROR
            else:
                request_handler = self._request_handler

            # Important don't hold a reference to the current task
            # as on traceback it will prevent the task from being
            # collected and will cause a memory leak.
            request = self._request_factory(
                message,
                payload,
                self,
                writer,
                self._task_handler or asyncio.current_task(loop),  # type: ignore[arg-type]
            )
            try:
                # Awaited in this task, not a new one a request: see DirectStart.
                try:
                    resp, reset = await self._handle_request(request, start, request_handler)
                except ConnectionError:
                    self.log_debug("Ignored premature client disconnection")
                    break

                if reset:
                    self.log_debug("Ignored premature client disconnection 2")
                    break

                # notify server about keep-alive
                self._keepalive = bool(resp.keep_alive)

                # check payload
                if not payload.is_eof():
                    lingering_time = self._lingering_time
                    if not self._force_close and lingering_time:
                        self.log_debug(
                            "Start lingering close timer for %s sec.", lingering_time
                        )

                        now = loop.time()
                        end_t = now + lingering_time

                        try:
                            while not payload.is_eof() and now < end_t:
                                async with ceil_timeout(end_t - now):
                                    # read and ignore
                                    await payload.readany()
                                now = loop.time()
                        except (asyncio.CancelledError, asyncio.TimeoutError):
                            if (
                                sys.version_info >= (3, 11)
                                and (t := asyncio.current_task())
                                and t.cancelling()
                            ):
                                raise

                    # if payload still uncompleted
                    if not payload.is_eof() and not self._force_close:
                        self.log_debug("Uncompleted request.")
                        self.close()

                payload.set_exception(web_protocol._PAYLOAD_ACCESS_ERROR)

            except asyncio.CancelledError:
                self.log_debug("Ignored premature client disconnection")
                self.force_close()
                raise
            except Exception as exc:
                self.log_exception("Unhandled exception", exc_info=exc)
                self.force_close()
            except BaseException:
                self.force_close()
                raise
            finally:
                request._task = None  # type: ignore[assignment] # Break reference cycle in case of exception
                if self.transport is None and resp is not None:
                    self.log_debug("Ignored premature client disconnection.")

            if self._keepalive and not self._close and not self._force_close:
                # start keep-alive timer
                close_time = loop.time() + keepalive_timeout
                self._next_keepalive_close_time = close_time
                if self._keepalive_handle is None:
                    self._keepalive_handle = loop.call_at(
                        close_time, self._process_keepalive
                    )
            else:
                break

        # remove handler, close transport if no handlers left
        if not self._force_close:
            self._task_handler = None
            if self.transport is not None:
                coalesce.write_held(loop, self.transport)  # not aiohttp's: see force_close
                self.transport.close()

    def force_close(self) -> None:
        """aiohttp's, once the response's bytes still held for the end of the loop's turn are written:
        with no task between a request's handler and this loop, a close can come before that end."""
        if self.transport is not None:
            coalesce.write_held(self._loop, self.transport)
        super().force_close()


def request_in_progress(handler: RequestHandler) -> bool:
    return bool(handler._request_in_progress)


def requests_pending(handler: RequestHandler) -> bool:
    """Requests parsed and queued behind the one being served."""
    return bool(handler._messages)


def serving(handler: RequestHandler) -> bool:
    """A request is being served, or parsed and queued to be."""
    return bool(handler._request_in_progress or handler._messages)


def request_count(handler: RequestHandler) -> int:
    return handler._request_count


def waiting_for_request(handler: RequestHandler) -> bool:
    """Idle between requests (aiohttp's own test for idle)."""
    waiter = handler._waiter
    return waiter is not None and not waiter.done()


def handler_loop(handler: RequestHandler) -> asyncio.AbstractEventLoop:
    return handler._loop


def handler_arguments(server: web.Server) -> tuple[asyncio.AbstractEventLoop, dict[str, Any]]:
    """What `web.Server.__call__` passes to a new RequestHandler: its loop and keyword options."""
    return server._loop, server._kwargs


def listening_urls(site: web.BaseSite, scheme: str = "http") -> list[str]:
    """`http://host:port` for each socket the site listens on (port 0 resolved); `unix:/path` for a Unix socket."""
    server = site._server
    sockets: list[socket.socket] = list(server.sockets) if server is not None else []  # type: ignore[union-attr]
    unix = getattr(socket, "AF_UNIX", None)  # Windows has none
    return [f"unix:{sock.getsockname()}" if sock.family == unix else Address(*sock.getsockname()[:2]).url(scheme)
            for sock in sockets]


def handshake_headers(ws: ClientWebSocketResponse):
    """The upstream's 101 response headers, or None."""
    response = ws._response
    return response.headers if response is not None else None


# Request checks (`ops.connection`): each request as aiohttp's parser hands it over.

QueuedRequest = tuple[Any, StreamReader]  # a parsed request (RawRequestMessage) or a refusal, and its body


def request_queue(handler: RequestHandler) -> deque[QueuedRequest]:
    """Requests parsed and not yet handed to the handler, oldest first; the connection may edit it."""
    return handler._messages


# What a queued request is when the parser refused it (answered by `handle_error`): `isinstance(message, REFUSAL)`.
REFUSAL = web_protocol._ErrInfo


def refusal(status: int, exc: BaseException, message: str) -> QueuedRequest:
    """A queued request that `handle_error(request, status, exc, message)` answers."""
    return web_protocol._ErrInfo(status=status, exc=exc, message=message), EMPTY_PAYLOAD


def refusal_reason(message: Any) -> BaseException:
    return message.exc


def check_request_lines(handler: RequestHandler, check: Callable[[bytes], None]) -> None:
    """Have the pure-Python parser pass each raw request line to `check` (which raises to refuse it).

    It upper-cases the method it read, so the case can only be seen before;
    llhttp, the C parser, needs no such check: it knows methods by their
    upper-case names only.
    """
    parser = handler._parser
    if isinstance(parser, http_parser.HttpRequestParserPy):
        parse = parser.parse_message

        def parse_message(lines: list[bytes]):
            if lines:
                check(lines[0])
            return parse(lines)

        parser.parse_message = parse_message  # type: ignore[method-assign]


def parses_in_python(handler: RequestHandler) -> bool:
    """Whether the connection's parser is the pure-Python one (AIOHTTP_NO_EXTENSIONS), not llhttp."""
    return isinstance(handler._parser, http_parser.HttpRequestParserPy)


def unread_chunk_size(handler: RequestHandler) -> int:
    """What is left of the chunk the pure-Python parser is reading (0 for llhttp, which bounds it itself)."""
    payload_parser = getattr(handler._parser, "_payload_parser", None)
    return getattr(payload_parser, "_chunk_size", 0) if payload_parser is not None else 0


def take_refused_upgrade_tail(handler: RequestHandler) -> bytes | None:
    """The bytes aiohttp kept aside behind an upgrade request that was not taken up, handed over
    for parsing (the connection is HTTP again), or None when there are none to parse now.

    `RequestHandler.finish_response` parses them itself, past the connection's
    checks; taken here first, they go through `data_received` like any bytes.
    The condition is aiohttp's own: an upgrade with no protocol set up for it.
    """
    if handler._upgraded and not handler._messages and handler._payload_parser is None \
            and handler._parser is not None:
        handler._parser.set_upgraded(False)
        handler._upgraded = False
        tail, handler._message_tail = handler._message_tail, b""
        return tail
    return None


def resume_reading_if_drained(handler: RequestHandler) -> None:
    """Read again if aiohttp stopped reading while bytes piled up (as behind an upgrade request)."""
    if handler._buffer_paused:
        handler._resume_reading_if_drained()
