"""aiohttp's loop over a connection's requests (`RequestHandler.start`, with the
`_handle_request` it awaits), copied to run each request's handler in the
connection's own task (`DirectStart`).

Like `aiohttp_private`, this leans on aiohttp's private names, each checked by
`tests/unit/test_aiohttp_private.py`, which also fails when aiohttp's own
copies change (a digest of their source), so these are brought up to date.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from typing import Awaitable, Callable

from aiohttp import web_protocol
from aiohttp.helpers import ceil_timeout
from aiohttp.http_writer import HttpVersion11, StreamWriter
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from ..upstream import coalesce
from . import aiohttp_private as private


# What a request refused as it was parsed is made of, as aiohttp's ERROR but for its version: a
# refusal says HTTP/1.1, the highest version the proxy speaks (RFC 9110 §2.5), as nginx's do.
_REFUSED = web_protocol.ERROR._replace(version=HttpVersion11)


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

    A response the handler has written to its end already (`write_whole`, a
    stream written to its eof) skips aiohttp's `finish_response`, whose
    prepare and write_eof would find nothing to do (`_handle_request`).

    Measured: one system call (epoll_wait) and 10k instructions (callgrind) fewer a
    request at concurrency 1 for the loop; 8k more for the skip.
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
                message = _REFUSED  # not aiohttp's ERROR, whose HTTP/1.0 the refusal's status line would say
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
                            # Not aiohttp's: the task that sent this body upstream, cancelled as the
                            # upstream answered first, lets go of it in the next turn. Until then
                            # it is a second reader: its wait would fail this one's (RuntimeError),
                            # or its end clear this one's waiter, so the drain waited for nothing.
                            await asyncio.sleep(0)
                            while not payload.is_eof() and now < end_t and not private.payload_awaited(payload):
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

    async def _handle_request(self, request: BaseRequest, start_time: float | None,
                              request_handler: Callable[[BaseRequest], Awaitable[StreamResponse]],
                              ) -> tuple[StreamResponse, bool]:
        """aiohttp's own (RequestHandler._handle_request), but for a response written to its end:
        `finish_response` would only find its prepare and write_eof done, so the request is finished
        and logged here, and five coroutines a request are spared. Where an upgrade was refused,
        `finish_response` has bytes to parse behind it: that response takes aiohttp's way."""
        self._request_in_progress = True
        try:
            try:
                self._current_request = request
                resp = await request_handler(request)
            finally:
                self._current_request = None
        except HTTPException as exc:
            resp = exc
            resp, reset = await self.finish_response(request, resp, start_time)
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError as exc:
            self.log_debug("Request handler timed out.", exc_info=exc)
            resp = self.handle_error(request, 504)
            resp, reset = await self.finish_response(request, resp, start_time)
        except Exception as exc:
            resp = self.handle_error(request, 500, exc)
            resp, reset = await self.finish_response(request, resp, start_time)
        else:
            # Deprecation warning (See #2415)
            if getattr(resp, "__http_exception__", False):
                warnings.warn(
                    "returning HTTPException object is deprecated "
                    "(#2415) and will be removed, "
                    "please raise the exception instead",
                    DeprecationWarning,
                )
            if resp._eof_sent and not self._upgraded:
                # Not aiohttp's: what finish_response does for a response written to its end.
                request._finish()
                self.log_access(request, resp, start_time)
                reset = False
            else:
                resp, reset = await self.finish_response(request, resp, start_time)
        finally:
            self._request_in_progress = False
            if self._handler_waiter is not None:
                self._handler_waiter.set_result(None)

        return resp, reset

    def force_close(self) -> None:
        """aiohttp's, once the response's bytes still held for the end of the loop's turn are written:
        with no task between a request's handler and this loop, a close can come before that end."""
        if self.transport is not None:
            coalesce.write_held(self._loop, self.transport)
        super().force_close()
