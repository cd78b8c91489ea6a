"""The proxy's own responses, and every private name of aiohttp's responses they rely on.

Two ways out: a response aiohttp prepares and writes (`NoInventedHeaders`,
`DeferredHeadResponse` for a forwarded one whose body streams), and one whose
body is all here, written in one go past aiohttp's machinery (`write_whole`,
`write_rendered`), which aiohttp then finds complete (`WrittenResponse`). Both
add to a head only what aiohttp adds to any response, by the same rules
(`_connection`), and serialize it with `core.headers.head_bytes`.

aiohttp has no public API for these; `tests/unit/test_aiohttp_private.py` is
their canary too (see `aiohttp_private`).

    name                                      used for
    StreamResponse._prepare_headers           NoInventedHeaders: no Server/Content-Type nobody set, and
      _cookies, _compression, _chunked          only the steps the proxy's responses need (aiohttp's own
                                                for one with cookies, compression or chunking)
    StreamResponse._send_headers_immediately  pass-through: head leaves with the first body bytes
    StreamResponse._payload_writer            pass-through: send the head ahead of a slow body
    StreamResponse(_real_headers=)            pass-through: the filtered upstream headers, not copied again
    StreamResponse._req, _headers,            NoInventedHeaders._prepare_headers: aiohttp's own less
      _keep_alive, _must_be_empty_body          what the proxy's responses never have
    helpers.rfc822_formatted_time,            ... and its Date and framing, as aiohttp sets them
      helpers.should_remove_content_length,
      helpers.must_be_empty_body
    StreamResponse._eof_sent, _keep_alive,    write_whole, write_rendered: a response written past
      _body_length, _state, _status, _reason    aiohttp's machinery, which then finds it complete
    BaseRequest._payload_writer, _protocol    write_whole: the request's writer and connection
    StreamResponse._write_headers, _status,   NoInventedHeaders: the head serialized by head_bytes
      _reason; StreamWriter._headers_buf,       (field bytes as they came, obs-text too), buffered
      _headers_written, _on_headers_sent        where aiohttp's writer keeps it
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from multidict import CIMultiDict

from ..core.headers import head_bytes
from ..upstream import coalesce
from .aiohttp_private import handler_loop


def _plain(response: web.StreamResponse) -> bool:
    """No cookies, compression or chunking of its own: all the proxy's responses but a rare few, whose
    head the proxy prepares and writes itself; the others get aiohttp's whole preparation."""
    return not (response._cookies or response._compression or response._chunked)


def _connection(keep_alive: bool, version: HttpVersion) -> str | None:
    """The Connection value this hop needs, as aiohttp decides it: keep-alive spelt out for HTTP/1.0,
    close for HTTP/1.1, nothing where the version's default holds."""
    if keep_alive:
        return "keep-alive" if version == HttpVersion10 else None
    return "close" if version == HttpVersion11 else None


class NoInventedHeaders(web.StreamResponse):
    """Keeps aiohttp from adding a Server or Content-Type nobody set, and prepares a head with
    only the steps the proxy's responses need.

    aiohttp fills both in when absent; a proxy must neither invent headers the
    upstream did not send nor advertise its own software. (Date is still added,
    as RFC 9110 §6.6.1 asks of a proxy.) Nothing else is added but what aiohttp
    adds to any response: the framing and Connection fields this hop needs.
    The proxy's responses set no cookies, compression or chunking of their
    own; one that does gets aiohttp's whole preparation.
    """

    async def _prepare_headers(self) -> None:
        if not _plain(self):
            had_type = hdrs.CONTENT_TYPE in self.headers
            had_server = hdrs.SERVER in self.headers
            await super()._prepare_headers()
            if not had_type:
                self.headers.popall(hdrs.CONTENT_TYPE, None)
            if not had_server:
                self.headers.popall(hdrs.SERVER, None)
            return
        request = self._req
        writer = self._payload_writer
        assert request is not None and writer is not None
        headers = self._headers
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = request.keep_alive
        version = request.version
        writer.length = length = self.content_length
        if self._must_be_empty_body:
            if hdrs.CONTENT_LENGTH in headers and should_remove_content_length(request.method, self._status):
                del headers[hdrs.CONTENT_LENGTH]
            headers.popall(hdrs.TRANSFER_ENCODING, None)
        elif length is None:
            if version >= HttpVersion11:
                writer.enable_chunking()
                headers[hdrs.TRANSFER_ENCODING] = "chunked"
            else:
                keep_alive = False  # HTTP/1.0: the close ends the body
        self._keep_alive = keep_alive
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        if hdrs.CONNECTION not in headers and (connection := _connection(keep_alive, version)) is not None:
            headers[hdrs.CONNECTION] = connection

    async def _write_headers(self) -> None:
        # aiohttp's own, with the head serialized by `head_bytes`: field bytes as they came.
        writer = self._payload_writer
        if getattr(writer, "_on_headers_sent", None) is not None:
            await super()._write_headers()
            return
        request = self._req
        assert writer is not None and request is not None
        version = request.version
        status_line = f"HTTP/{version.major}.{version.minor} {self._status} {self._reason}"
        writer._headers_buf = head_bytes(status_line, self._headers.items())  # type: ignore[attr-defined]
        writer._headers_written = False  # type: ignore[attr-defined]
        if self._send_headers_immediately:
            writer.send_headers()  # type: ignore[attr-defined]


class DeferredHeadResponse(NoInventedHeaders):
    """A forwarded response: its head leaves with the first body bytes, or when `send_head` says.

    Its headers are taken as given (the filtered upstream ones), not copied.
    """

    _send_headers_immediately = False

    def __init__(self, *, status: int = 200, reason: str | None = None,
                 headers: CIMultiDict[str] | None = None) -> None:
        super().__init__(status=status, reason=reason,
                         _real_headers=headers if isinstance(headers, CIMultiDict) else CIMultiDict(headers or ()))

    def send_head(self) -> None:
        """Send the head now, ahead of a body that is not there yet."""
        writer = self._payload_writer
        if writer is not None:
            writer.send_headers()  # type: ignore[attr-defined]


class WrittenResponse(web.StreamResponse):
    """A response `write_whole` has sent already: aiohttp's prepare and write_eof find nothing left to do."""

    format = "passthrough"

    def __init__(self, status: int, reason: str, keep_alive: bool, length: int) -> None:
        # StreamResponse.__init__'s own attributes, set here: its status and reason checks were
        # made by the head already written (`head_bytes`).
        self._state = {}
        self._headers = CIMultiDict()
        self._status = status
        self._reason = reason
        self._keep_alive = keep_alive
        self._eof_sent = True
        self._body_length = length


async def write_whole(request: web.BaseRequest, status: int, reason: str, fields: list[tuple[str, str]],
                      body: bytes, keep_alive: bool | None = None, date: bool = True,
                      framed: bool = False) -> WrittenResponse:
    """Send a response whose body is all here: its head and body in one write, framed here.

    aiohttp's own response machinery is for responses built piece by piece;
    for one that is whole, the head is serialized by `head_bytes`, which
    refuses a control character in any field as aiohttp's serializer does, and
    written with the body in one go, counted in the request's writer as its
    own writes are. What aiohttp adds to any response is
    added here too, in its order: Content-Length (unless the status or method
    forbids a body, or `framed` says `fields` have it already), Date (unless
    `date` is false: `fields` have one), and Connection as this hop needs it.
    """
    method, version = request.method, request.version
    if keep_alive is None:
        keep_alive = request.keep_alive
    if must_be_empty_body(method, status):
        body = b""
        if framed and should_remove_content_length(method, status):
            fields = [field for field in fields if field[0].lower() != "content-length"]
    elif not framed:
        fields.append((hdrs.CONTENT_LENGTH, str(len(body))))
    if date:
        fields.append((hdrs.DATE, rfc822_formatted_time()))
    if (connection := _connection(keep_alive, version)) is not None:
        fields.append((hdrs.CONNECTION, connection))
    head = head_bytes(f"HTTP/{version.major}.{version.minor} {status} {reason}", fields)
    writer = request._payload_writer  # request.writer, .protocol, .transport: a Python call each
    protocol = request._protocol
    transport = protocol.transport if protocol is not None else None
    if transport is None or transport.is_closing():
        raise ClientConnectionResetError("Cannot write to closing transport")
    data = head + body if body else head
    writer.output_size += len(data)
    coalesce.write(handler_loop(protocol), transport, data)  # with the turn's other writes
    if transport.get_write_buffer_size():
        await writer.drain()  # the client reads slowly: wait, as aiohttp's writer does
    return WrittenResponse(status, reason, keep_alive, len(body))


def write_interim(request: web.BaseRequest, status: int, reason: str, fields: list[tuple[str, str]]) -> None:
    """Send an interim (1xx) response ahead of the final one, at once (a 103's hints are for now).

    Not counted in the request's writer: the final response has not started,
    and may still be an error the proxy renders. What is held for the end of
    the turn on this connection (a pipelined request's answer) goes first.
    """
    protocol = request._protocol
    transport = protocol.transport if protocol is not None else None
    if transport is None or transport.is_closing():
        return
    coalesce.write_held(handler_loop(protocol), transport)
    transport.write(head_bytes(f"HTTP/1.1 {status} {reason}", fields))


async def write_rendered(request: web.BaseRequest, response: web.Response) -> web.StreamResponse:
    """A response the proxy rendered (its body whole), sent as `write_whole` sends one; one with
    cookies, compression or chunking, or not made of bytes, is left to aiohttp."""
    body = response.body
    if not _plain(response) or not isinstance(body, bytes) or response.prepared:
        return response
    status, headers = response.status, response.headers
    fields = list(headers.items())
    if keeps_length(request.method, status):  # HEAD: the length a GET would have had
        fields.append((hdrs.CONTENT_LENGTH, str(len(body))))
    return await write_whole(request, status, response.reason, fields, body, response._keep_alive,
                             date=hdrs.DATE not in headers)


def no_body(method: str, status: int) -> bool:
    """Whether a response to `method` with `status` has no body (HEAD, 1xx, 204, 304), as aiohttp decides."""
    return must_be_empty_body(method, status)


def keeps_length(method: str, status: int) -> bool:
    """Whether a response that has no body keeps its Content-Length (HEAD, 304), as aiohttp decides."""
    return must_be_empty_body(method, status) and not should_remove_content_length(method, status)
