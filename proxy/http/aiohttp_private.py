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
    HttpRequestParserPy.max_headers           its count of header lines, made llhttp's (public, but set once)
    RequestHandler._upgraded, _message_tail,  request checks: bytes kept aside behind an upgrade request,
      _payload_parser, _buffer_paused,          parsed (through the checks) once the upgrade is refused,
      _resume_reading_if_drained                as `RequestHandler.finish_response` would
    web.Server._kwargs, web.Server._loop      building our RequestHandler subclass
    BaseSite._server                          the sockets a site listens on (port 0 resolved)
    ClientWebSocketResponse._response         the upstream's handshake headers, for the client
    RequestHandler._request_factory,          requests made with their common answers filled in
      BaseRequest._cache, _message, _payload    (`answer_ahead`)
    StreamReader._waiter                      the lingering read of a body: does another reader still wait on it?
    RequestHandler._process_keepalive,        header deadline: overridden in `ops.connection`, so a head begun
      _keepalive_handle                         is bounded by header_timeout, not keepalive_timeout

RequestHandler.start, aiohttp's loop over a connection's requests, and the
_handle_request it awaits are copied whole in `aiohttp_loop` (DirectStart);
the canary holds each copy to the source it was copied from.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, Callable

from aiohttp import ClientWebSocketResponse, http_parser, web, web_protocol
from aiohttp.streams import EMPTY_PAYLOAD, EmptyStreamReader, StreamReader
from aiohttp.web_protocol import RequestHandler

from ..core.settings import Address


def request_in_progress(handler: RequestHandler) -> bool:
    return bool(handler._request_in_progress)


def serving(handler: RequestHandler) -> bool:
    """A request is being served, or parsed and queued to be."""
    return bool(handler._request_in_progress or handler._messages)


def request_count(handler: RequestHandler) -> int:
    return handler._request_count


def payload_awaited(payload: StreamReader) -> bool:
    """Another coroutine waits on this body (aiohttp's `readany` would raise RuntimeError)."""
    return payload._waiter is not None


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
    """Requests parsed and not yet handed to the handler, oldest first; the connection may edit it.
    (One deque for the handler's life.)"""
    return handler._messages


NO_BODY = EMPTY_PAYLOAD  # the body of every request that has none: one object, complete from the start


# What a queued request is when the parser refused it (answered by `handle_error`): `isinstance(message, REFUSAL)`.
REFUSAL = web_protocol._ErrInfo
REFUSED_METHOD = web_protocol.ERROR.method  # the method of the request aiohttp makes up to answer a refusal


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


def count_header_fields_only(handler: RequestHandler) -> None:
    """Have the pure-Python parser count header fields alone against max_headers, as llhttp does:
    it counts the request line and the blank line that ends the head too."""
    handler._parser.max_headers += 2


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


# What the proxy asks of every request that aiohttp answers with a function of its own (reified:
# run once a request, on first use, then kept in the request's `_cache`). The same for every
# request of a connection, taken from its first:
PER_CONNECTION = ("remote", "scheme", "secure")


def connection_answers(request: web.BaseRequest) -> dict[str, Any]:
    """The answers that are the same for every request of `request`'s connection, as aiohttp gives them."""
    return {name: getattr(request, name) for name in PER_CONNECTION}


def answer_ahead(request: web.BaseRequest, per_connection: dict[str, Any]) -> None:
    """Fill in what the proxy asks of every request, as aiohttp's own functions would compute it
    from the parsed message: read back as aiohttp reads a reified answer, without a Python call
    each (ten a request). The canary compares each with aiohttp's own function."""
    message = request._message
    payload = request._payload
    request._cache.update(per_connection, method=message.method, version=message.version, headers=message.headers,
                          raw_path=message.path, keep_alive=not message.should_close, content=payload,
                          body_exists=type(payload) is not EmptyStreamReader)


def answer_ahead_of_each_request(handler: RequestHandler) -> None:
    """Have `handler` make its requests as aiohttp's server does (`web.Server._make_request`), each
    answered ahead (`answer_ahead`), what holds for the connection taken from its first request."""
    make_request = handler._request_factory
    answers: dict[str, Any] = {}

    def answered(message, payload, protocol, writer, task) -> web.BaseRequest:
        request = make_request(message, payload, protocol, writer, task)
        if not answers:
            answers.update(connection_answers(request))
        answer_ahead(request, answers)
        return request

    handler._request_factory = answered
