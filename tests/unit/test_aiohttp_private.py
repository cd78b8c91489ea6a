"""The canary for aiohttp's private names (proxy/http/aiohttp_private.py, aiohttp_responses.py, aiohttp_loop.py).

Each name errorproxy reaches into is checked against the installed aiohttp.
When a release renames one, this fails first, naming the version and the
name, instead of the header deadline or the streaming path quietly breaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import re

import aiohttp
import pytest
from aiohttp import ClientWebSocketResponse, http_parser, web, web_protocol
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from proxy.http import aiohttp_loop, aiohttp_private, aiohttp_responses

VERSION = f"aiohttp {aiohttp.__version__}"


def _missing(owner: type, name: str) -> str:
    return (f"{VERSION} has no {owner.__name__}.{name}, which proxy/http/aiohttp_private.py or "
            f"aiohttp_responses.py relies on: adapt that module to this release (or pin aiohttp below it)")


def _instance_attributes(cls: type) -> set[str]:
    """Names a class's instances carry: slots, class-level defaults and annotations up the MRO,
    and every `self.name = ...` its source assigns."""
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(getattr(klass, "__slots__", ()), vars(klass), getattr(klass, "__annotations__", {}))
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # a builtin, or compiled: its slots say it all
            continue
        names.update(re.findall(r"self\.(\w+)\s*(?::[^=\n]*)?=", source))
    return names


# Every private attribute errorproxy reads or sets, by the class whose instances carry it.
_PRIVATE_ATTRIBUTES = {
    RequestHandler: ("_request_in_progress", "_messages", "_request_count", "_waiter", "_loop", "_parser", "_upgraded",
                     "_message_tail", "_payload_parser", "_buffer_paused", "_request_factory"),
    http_parser.HttpRequestParserPy: ("_payload_parser", "max_headers"),
    http_parser.HttpPayloadParser: ("_chunk_size",),
    web.Server: ("_kwargs", "_loop"),
    web.BaseSite: ("_server",),
    web.BaseRequest: ("_cache", "_message", "_payload", "_payload_writer", "_protocol"),
    web.StreamResponse: ("_payload_writer", "_req", "_headers", "_keep_alive", "_must_be_empty_body", "_eof_sent",
                         "_cookies", "_compression", "_chunked", "_body_length", "_state"),
    ClientWebSocketResponse: ("_response",),
    StreamReader: ("_waiter",),
}


@pytest.mark.parametrize(("owner", "name"), [
    pytest.param(owner, name, id=f"{owner.__name__}.{name}")
    for owner, names in _PRIVATE_ATTRIBUTES.items() for name in names
])
def test_instance_attribute_exists(owner: type, name: str) -> None:
    assert name in _instance_attributes(owner), _missing(owner, name)


@contextlib.asynccontextmanager
async def _connected(server: web.Server):
    """`server` listening on 127.0.0.1 (found through `listening_urls`), and a connection to it."""
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        (url,) = aiohttp_private.listening_urls(site)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield await asyncio.open_connection(host, int(port))
    finally:
        await runner.cleanup()


def _server(connection: type[RequestHandler], handle, **kwargs) -> web.Server:
    """An aiohttp server whose connections are `connection`s, built from the server's own arguments."""
    class Server(web.Server):
        def __call__(self) -> RequestHandler:
            loop, arguments = aiohttp_private.handler_arguments(self)
            return connection(self, loop=loop, **arguments)

    return Server(handle, **kwargs)


_START_READS = ("_manager", "_keepalive_timeout", "_request_factory", "_request_handler", "_force_close", "_messages",
                "_waiter", "_parser", "_buffer_paused", "_msg_queue_resume_size", "_logging_enabled", "_task_handler",
                "_keepalive", "_lingering_time", "_close", "_next_keepalive_close_time", "_keepalive_handle",
                # ... and _handle_request, copied too:
                "_request_in_progress", "_current_request", "_handler_waiter", "_upgraded")
_START_CALLS = ("_resume_reading_if_drained", "_make_error_handler", "_handle_request", "_process_keepalive",
                "log_debug", "log_exception", "force_close", "close", "finish_response", "handle_error", "log_access")


# aiohttp's RequestHandler.start, as DirectStart.start was copied from it (aiohttp 3.14.5). A release
# that changes it fails here: compare the two, carry the change over, then record the new digest.
_START_SOURCE_SHA256 = "2e565fd40c8e04fb3afb481d5ba52691a61d28396573b4b8a4cf3b168782288e"


# Likewise DirectStart._handle_request, copied from aiohttp's, and the finish_response it skips for a
# response written to its end: a change to either may change what that skip must still do.
_HANDLE_REQUEST_SOURCE_SHA256 = "a88a34ee65a2714c6b392d23963ba9a80e7d50d4889905cd949a94d479102d8f"
_FINISH_RESPONSE_SOURCE_SHA256 = "b7eb53db8f4b30ca8e8c2015c72317eed4b58012a12ec6b903601ff86f0d88b0"


@pytest.mark.parametrize(("method", "digest"), [
    pytest.param(RequestHandler.start, _START_SOURCE_SHA256, id="start"),
    pytest.param(RequestHandler._handle_request, _HANDLE_REQUEST_SOURCE_SHA256, id="_handle_request"),
    pytest.param(RequestHandler.finish_response, _FINISH_RESPONSE_SOURCE_SHA256, id="finish_response"),
])
def test_direct_start_is_a_copy_of_the_installed_aiohttp_s_loop(method, digest: str) -> None:
    assert hashlib.sha256(inspect.getsource(method).encode()).hexdigest() == digest, (
        f"{VERSION} changed RequestHandler.{method.__name__}: carry the change over to aiohttp_loop.DirectStart")


@pytest.mark.parametrize("name", _START_READS)
def test_what_direct_start_reads_exists(name: str) -> None:
    """DirectStart.start and _handle_request are aiohttp's, copied: each name they read is still there."""
    assert name in _instance_attributes(RequestHandler), _missing(RequestHandler, name)


def test_what_direct_start_calls_exists() -> None:
    for name in _START_CALLS:
        assert callable(getattr(RequestHandler, name, None)), _missing(RequestHandler, name)
    for name in ("ERROR", "_ErrInfo", "_PAYLOAD_ACCESS_ERROR"):
        assert hasattr(web_protocol, name), f"{VERSION} has no aiohttp.web_protocol.{name}"
    assert inspect.iscoroutinefunction(RequestHandler._handle_request), _missing(RequestHandler, "_handle_request")
    assert callable(getattr(web.BaseRequest, "_finish", None)), _missing(web.BaseRequest, "_finish")


async def test_direct_start_serves_each_request_in_the_connection_s_task() -> None:
    """Pipelined requests on one connection are answered in order, each in the connection's own task;
    a client that goes away cancels the request being served."""
    tasks: list[asyncio.Task] = []
    cancelled = asyncio.Event()

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        tasks.append(asyncio.current_task())
        if request.path == "/slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return web.Response(text=request.path)

    async with _connected(_server(aiohttp_loop.DirectStart, handle, handler_cancellation=True)) as (reader, writer):
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2 or not answers.endswith(b"/b"):
            answers += await asyncio.wait_for(reader.read(4096), 5)
        assert answers.index(b"\r\n\r\n/a") < answers.index(b"\r\n\r\n/b")
        assert len(tasks) == 2 and tasks[0] is tasks[1]
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        while len(tasks) < 3:
            await asyncio.sleep(0.01)
        writer.close()
        await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_written_response_skips_finish_response_and_is_still_finished() -> None:
    """A response written to its end is not handed to finish_response; one that is not, is (and is
    prepared and sent by it); both are logged as aiohttp logs a response."""
    finished: list[str] = []
    logged: list[int] = []

    class Connection(aiohttp_loop.DirectStart):
        async def finish_response(self, request, resp, start_time):
            finished.append(request.path)
            return await super().finish_response(request, resp, start_time)

        def log_access(self, request, response, time) -> None:
            logged.append(response.status)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/written":
            return await aiohttp_responses.write_whole(request, 200, "OK", [], b"w")
        return web.Response(status=201, text="r")

    async with _connected(_server(Connection, handle)) as (reader, writer):
        writer.write(b"GET /written HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /prepared HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 1 and answer.count(b"HTTP/1.1 201 Created\r\n") == 1
    assert answer.endswith(b"\r\n\r\nr")
    assert finished == ["/prepared"]
    assert logged == [200, 201]


_REQUESTS = {
    "plain": b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "body": b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    "chunked": b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    "http/1.0": b"GET /old HTTP/1.0\r\n\r\n",
    "close": b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "absolute": b"GET http://y.example/abs HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(_REQUESTS.values()), ids=list(_REQUESTS))
async def test_answers_ahead_are_aiohttp_s_own(raw: bytes) -> None:
    """What `answer_ahead` fills in is what aiohttp's own reified functions (`.wrapped`) compute."""
    seen: list[tuple[dict, dict]] = []

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        own = {name: vars(web.BaseRequest)[name].wrapped(request)
               for name in ("method", "version", "headers", "raw_path", "keep_alive", "content", "body_exists",
                            *aiohttp_private.PER_CONNECTION)}
        aiohttp_private.answer_ahead(request, aiohttp_private.connection_answers(request))
        seen.append((own, {name: getattr(request, name) for name in own}))
        await request.read()
        return web.Response(text="ok")

    async with _connected(web.Server(handle)) as (reader, writer):
        writer.write(raw)
        await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        writer.close()
    ((own, answered),) = seen
    for name, value in own.items():
        assert answered[name] is value or answered[name] == value, name


def test_forwarded_response_needs_exist() -> None:
    """DeferredHeadResponse hands its headers over uncopied and sets Date and framing as aiohttp does."""
    from aiohttp import helpers
    from multidict import CIMultiDict

    assert "_real_headers" in inspect.signature(web.StreamResponse.__init__).parameters, \
        _missing(web.StreamResponse, "__init__(_real_headers=)")
    for name in ("rfc822_formatted_time", "should_remove_content_length", "must_be_empty_body"):
        assert callable(getattr(helpers, name, None)), f"{VERSION} has no aiohttp.helpers.{name}"
    from aiohttp.http_writer import StreamWriter
    for name in ("_headers_buf", "_headers_written", "_on_headers_sent"):
        assert name in _instance_attributes(StreamWriter), _missing(StreamWriter, name)
    for name in ("_status", "_reason"):
        assert name in _instance_attributes(web.StreamResponse), _missing(web.StreamResponse, name)
    assert inspect.iscoroutinefunction(getattr(web.StreamResponse, "_write_headers", None)), \
        _missing(web.StreamResponse, "_write_headers")
    headers = CIMultiDict({"ETag": '"v1"'})
    assert aiohttp_responses.DeferredHeadResponse(status=200, headers=headers).headers is headers


async def test_a_whole_response_is_written_once_and_left_alone_by_aiohttp() -> None:
    """write_whole's response: one head with the framing aiohttp would add, the body, nothing after."""
    async def whole(request: web.BaseRequest) -> web.StreamResponse:
        return await aiohttp_responses.write_whole(request, 201, "Made", [("X-A", "1")], b"body", date=False)

    async with _connected(web.Server(whole)) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    first, second = answer.split(b"HTTP/1.1 201 Made\r\n")[1:]
    assert first == b"X-A: 1\r\nContent-Length: 4\r\n\r\nbody"
    assert second == b"X-A: 1\r\nConnection: close\r\n\r\n"  # HEAD: no body, no length invented


def test_stream_response_hooks_exist() -> None:
    assert inspect.iscoroutinefunction(getattr(web.StreamResponse, "_prepare_headers", None)), \
        _missing(web.StreamResponse, "_prepare_headers")
    assert isinstance(getattr(web.StreamResponse, "_send_headers_immediately", None), bool), \
        _missing(web.StreamResponse, "_send_headers_immediately")


async def test_the_accessors_work_on_a_live_server() -> None:
    """The names are not only there but mean what the accessors assume, on a real connection."""
    async def hello(request: web.BaseRequest) -> web.StreamResponse:
        response = aiohttp_responses.DeferredHeadResponse(status=200)
        await response.prepare(request)
        response.send_head()
        await response.write_eof(b"hi")
        return response

    server = web.Server(hello)
    loop, kwargs = aiohttp_private.handler_arguments(server)
    assert loop is asyncio.get_running_loop() and isinstance(kwargs, dict)
    handler = server()
    assert aiohttp_private.request_count(handler) == 0
    assert not aiohttp_private.request_in_progress(handler)
    assert not aiohttp_private.serving(handler)
    assert aiohttp_private.handler_loop(handler) is loop
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        (url,) = aiohttp_private.listening_urls(site)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200 and await response.read() == b"hi"
            assert "Server" not in response.headers and "Content-Type" not in response.headers
    finally:
        await runner.cleanup()


def test_request_check_hooks_exist() -> None:
    assert callable(getattr(RequestHandler, "_resume_reading_if_drained", None)), \
        _missing(RequestHandler, "_resume_reading_if_drained")
    assert callable(getattr(http_parser.HttpRequestParserPy, "parse_message", None)), \
        _missing(http_parser.HttpRequestParserPy, "parse_message")
    info = getattr(web_protocol, "_ErrInfo", None)
    assert info is not None, f"{VERSION} has no aiohttp.web_protocol._ErrInfo"
    refusal, _ = aiohttp_private.refusal(400, ValueError("x"), "why")
    assert isinstance(refusal, aiohttp_private.REFUSAL) and (refusal.status, refusal.message) == (400, "why")
    assert str(aiohttp_private.refusal_reason(refusal)) == "x"


async def test_the_request_check_accessors_work_on_the_python_parser() -> None:
    """The raw request line reaches the check before the parser upper-cases its method, and an
    unbounded chunk size is seen while its chunk is read."""
    handler = web.Server(lambda request: None)()
    assert not aiohttp_private.parses_in_python(handler)  # llhttp, by default
    handler._parser = http_parser.HttpRequestParserPy(handler, asyncio.get_running_loop(), 2**16)
    assert aiohttp_private.parses_in_python(handler)
    lines: list[bytes] = []
    aiohttp_private.check_request_lines(handler, lines.append)
    handler._parser.feed_data(b"post /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert lines == [b"post /p HTTP/1.1"]
    assert aiohttp_private.unread_chunk_size(handler) == 0
    handler._parser.feed_data(b"1000000000000000000\r\nab")
    assert aiohttp_private.unread_chunk_size(handler) == 2**72 - 2
    assert aiohttp_private.take_refused_upgrade_tail(handler) is None  # no upgrade asked for
