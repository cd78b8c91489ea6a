"""An upstream response, parsed by llhttp (httptools) as its connection receives it.

Each exchange gets a fresh parser, so nothing of one response can leak into
the next. The response is also the parser's callback object.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Callable

import httptools
from multidict import CIMultiDict, CIMultiDictProxy, istr

from .connection import Connection
from .errors import Disconnected, HeadersTooLarge, Malformed, ReadTimeout, UpstreamFailure
from .tls import failure as tls_failure

_READ_HIGH_WATER = 2**18  # buffered body bytes above which the socket is no longer read
_HEADER_LINES = 100  # the header section may hold this many lines of max_line_size
_NO_BODY_STATUSES = frozenset({204, 304})
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())  # until the head is in
# Names most responses carry, spelled as most servers spell them, as istr: multidict folds an
# istr once, a str at each use. Any other spelling is decoded as it came.
_KNOWN_NAMES = {name.encode(): istr(name) for name in (
    "Server", "Date", "Content-Type", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding", "ETag",
    "Last-Modified", "Cache-Control", "Vary", "Location", "Set-Cookie", "Accept-Ranges", "Expires", "X-Request-ID",
    "content-type", "content-length", "date", "server", "connection", "etag", "vary", "cache-control")}


# Told an interim response: its status, reason, headers and HTTP version ("1.1").
Interim = Callable[[int, str, CIMultiDictProxy[str], str], None]


class _Stop(Exception):
    """Raised inside the parser at the end of a HEAD response's head: no body follows it."""


class Response:
    """A response: its head once `request` returns, its body through `read()`.

    The body is handed over in the chunks the socket gave (all that is
    buffered, joined); past `_READ_HIGH_WATER` buffered bytes the socket is
    not read until the caller catches up. Nothing may arrive for
    `read_timeout` while the proxy is waiting for it (the connection's timer,
    kept across its exchanges, calls `check_timeout`).
    """

    __slots__ = ("_connection", "_loop", "_parser", "_head_only", "_read_timeout", "_max_line", "status", "reason",
                 "version", "headers", "body_sent", "awaiting_client", "started", "_http11", "_raw", "_head_bytes",
                 "_head_done", "_complete", "_keep_alive", "_error", "_chunks", "_buffered", "_paused", "_waiter",
                 "_last", "_done", "_interim")

    def __init__(self, connection: Connection, head_only: bool, has_body: bool,
                 read_timeout: float, max_line_size: int, interim: Interim | None = None) -> None:
        self._connection = connection
        self._loop = connection.loop
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._read_timeout = read_timeout
        self._max_line = max_line_size
        self.status = 0
        self.reason = ""
        self.version = (1, 1)
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self.body_sent = not has_body
        self.awaiting_client = False  # set by the connection while it waits for the client's body
        self.started = False  # a byte of the response has arrived
        self._http11 = False  # its first bytes were "HTTP/1.1 ": the version, without asking llhttp for it
        self._raw: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._head_done = False
        self._complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._last = 0.0
        self._done = False
        self._interim = interim  # told each interim response (1xx) but 100, to pass on

    # What the proxy reads

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        value = self.headers.get("Content-Type")
        if not value:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()

    @property
    def complete(self) -> bool:
        """The whole body has arrived (what `read()` has not returned yet is buffered)."""
        return self._complete

    async def read(self) -> bytes:
        """The next part of the body; b"" at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take()

    def take(self) -> bytes:
        """What of the body is buffered, without waiting (all of it, once `complete`)."""
        chunks = self._chunks
        if not chunks:
            return b""
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            self._last = self._loop.time()
            transport = self._connection.transport
            if transport is not None:
                transport.resume_reading()
        return chunk

    def release(self) -> None:
        """The caller is done: the connection goes back to the pool if the exchange ended cleanly."""
        if self._done:
            return
        self._end()
        connection = self._connection
        connection.finish()
        if self._complete and self._error is None and self._keep_alive and self.body_sent and not self._chunks:
            connection.release()
        else:
            connection.close()

    def close(self) -> None:
        """The caller gives up on this response: its connection is closed."""
        if self._done:
            return
        self._end()
        self._connection.finish()
        self._connection.close()

    def _end(self) -> None:
        self._done = True
        self._parser = None  # it refers back to this response: no cycle left for the collector

    # What the connection calls

    async def wait_head(self) -> None:
        if not self._head_done and self._error is None:
            self._last = self._loop.time()
            self._connection.watch(self._read_timeout)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except BaseException:
                self.close()
                raise
            finally:
                self._waiter = None
        if self._error is not None:
            self.close()
            raise self._error

    def touch(self) -> None:
        self._last = self._loop.time()

    def feed(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            self._http11 = data.startswith(b"HTTP/1.1 ")
        self._last = self._loop.time()
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_line * _HEADER_LINES:
                self.fail(HeadersTooLarge(f"response head over {self._head_bytes} bytes"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Stop):
                # A HEAD response ends with its head; bytes after it would be a body that is not allowed.
                self._complete = True
                self._keep_alive = self._keep_alive and data.endswith(b"\r\n\r\n")
                self._wake()
            elif isinstance(cause, UpstreamFailure):
                self.fail(cause)
            else:
                self.fail(Malformed(f"{type(cause).__name__}: {cause}"))
        except httptools.HttpParserUpgrade:
            self.fail(Malformed("the response switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self.fail(Malformed(str(exc) or type(exc).__name__))

    def lost(self, exc: Exception | None) -> None:
        if self._complete or self._error is not None:
            return
        if self._head_done and self._until_close():
            self._complete = True  # RFC 9112 §6.3: no length and not chunked, the close ends the body
            self._keep_alive = False
            self._wake()
        elif isinstance(exc, ssl.SSLError) and not self.started:
            # An alert instead of a response: with TLS 1.3 a refused client
            # certificate is told only after the handshake, once we sent the request.
            error = tls_failure(exc)
            error.request_sent = True
            self.fail(error)
        else:
            where = "response body" if self._head_done else "response head"
            reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
            self.fail(Disconnected(f"the connection closed before the end of the {where}{reason}"))

    def fail(self, exc: BaseException) -> None:
        if self._error is None and not self._done:
            self._error = exc
            self._connection.close()
            self._wake()

    def _until_close(self) -> bool:
        headers = self.headers
        return ("Content-Length" not in headers and "chunked" not in headers.get("Transfer-Encoding", "").lower()
                and self.status not in _NO_BODY_STATUSES and not self._head_only)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None  # woken once: the callbacks that follow in the same read need not call again
            if not waiter.done():
                waiter.set_result(None)

    def check_timeout(self) -> None:
        """Fail if the upstream was silent for `read_timeout` while waited for; else be checked again then."""
        if self._complete or self._error is not None or self._done:
            return
        now = self._loop.time()
        if self._paused or self.awaiting_client:
            # The proxy is not reading, or waits for the client's body: the upstream is not the one waited for.
            self._last = now
        left = self._last + self._read_timeout - now
        if left > 0:
            self._connection.watch(left)
        else:
            self.fail(ReadTimeout(f"nothing from the upstream for {self._read_timeout:g}s"))

    # llhttp callbacks (httptools)

    def on_message_begin(self) -> None:
        if self._complete:
            self._keep_alive = False  # bytes after the end of the response: the connection is not to be trusted
            raise _Stop

    def on_status(self, reason: bytes) -> None:
        if len(reason) > self._max_line:
            raise HeadersTooLarge(f"status line over {self._max_line} bytes")
        self.reason = reason.decode("utf-8", "surrogateescape")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self._max_line:
            raise HeadersTooLarge(f"a header line over {self._max_line} bytes")
        self._raw.append((_KNOWN_NAMES.get(name) or name.decode("utf-8", "surrogateescape"),
                          value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            if status < 100:  # three digits (llhttp checks that much), but no status code: "099", "000"
                raise Malformed(f"status {status:03d} is below 100")
            if status == 101:
                raise Malformed("101 Switching Protocols to a request that asked for no upgrade")
            if status != 100 and self._interim is not None:  # 100 Continue is the proxy's own to send
                version = "1.1" if self._http11 or parser.get_http_version() != "1.0" else "1.0"
                self._interim(status, self.reason, CIMultiDictProxy(CIMultiDict(self._raw)), version)
            self._raw = []  # 100 Continue, 103 Early Hints: interim, the final response follows
            self._head_bytes = 0
            self._http11 = False  # the final response's version is llhttp's to say
            return
        self.status = status
        # llhttp gives the version as a string it formats each time: asked only when the first bytes did not say.
        self.version = (1, 1) if self._http11 or parser.get_http_version() != "1.0" else (1, 0)
        self.headers = CIMultiDictProxy(CIMultiDict(self._raw))
        self._keep_alive = parser.should_keep_alive()
        self._head_done = True
        self._wake()
        if self._head_only:
            raise _Stop

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _READ_HIGH_WATER and not self._paused:
            transport = self._connection.transport
            if transport is not None:
                self._paused = True
                transport.pause_reading()
        if self._waiter is not None:
            self._wake()

    def on_message_complete(self) -> None:
        if self._head_done:
            self._complete = True
            if self._waiter is not None:
                self._wake()
