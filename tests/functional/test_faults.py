"""Misbehaving upstreams and clients: each failure ends in a clean problem or an honest abort.

What these prove, whatever the peer does wrong:
- before any response byte went out, the client gets a problem+json with the
  status and RFC 9209 Proxy-Status error that name the failure, and nothing of
  the upstream's raw bytes or of aiohttp's exception text;
- once a response has started, a broken upstream aborts the client connection,
  so a truncated body can never pass for a whole one;
- a client that goes away cancels its upstream request, and the proxy keeps
  neither the memory nor the upstream connection;
- slow or idle clients and oversized bodies are cut off by the server limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import config_yaml, raw_exchange, read_request_head

# Put in every malformed reply; seeing it in what the client got means a leak.
MARKER = b"zq-leaked-upstream-bytes-7f3a"
FAST_UPSTREAM = """
connect_timeout: 500ms
read_timeout: 500ms
"""
OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


# --- helpers -------------------------------------------------------------------------


@dataclass
class Reply:
    """A response as the client got it off the wire."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    raw: bytes


def _parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return Reply(int(status_line.split(" ")[1]), headers, body, raw)


async def _read_reply(reader: asyncio.StreamReader, timeout: float = 5) -> Reply:
    """One Content-Length response from a raw connection, without waiting for close."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    reply = _parse(head)
    length = int(reply.headers.get("Content-Length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return Reply(reply.status, reply.headers, body, head + body)


def _assert_problem(reply: Reply, status: int, error: str | None = None) -> dict:
    """`reply` is a problem+json the proxy rendered itself, with nothing leaked into it."""
    assert reply.status == status, reply.raw[:500]
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.headers["Cache-Control"] == "no-store"
    if error is None:
        assert "Proxy-Status" not in reply.headers
    else:
        assert reply.headers["Proxy-Status"] == f"errorproxy; error={error}"
    problem = json.loads(reply.body)
    assert problem["status"] == status
    assert set(problem) <= PROBLEM_KEYS
    assert MARKER not in reply.raw
    for foreign in (b"aiohttp", b"message=", b"Traceback", b"Error:"):
        assert foreign not in reply.raw, foreign
    return problem


@dataclass
class Tally:
    """What a raw upstream saw: connections accepted and still open, request heads."""

    accepted: int = 0
    open: int = 0
    heads: list[bytes] = field(default_factory=list, repr=False)

    def counting(self, serve):
        """`serve(reader, writer)` wrapped to count its connection."""

        async def handler(reader, writer):
            self.accepted += 1
            self.open += 1
            try:
                await serve(reader, writer)
            finally:
                self.open -= 1

        return handler

    async def wait_until(self, condition, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


def _replying(tally: Tally, first: bytes):
    """An upstream answering the first request with `first` and later ones with OK_REPLY.

    It keeps each connection open for more requests, so a proxy that reused a
    connection after a broken response would send the next request down it.
    """

    async def serve(reader, writer):
        for _ in range(5):
            head = await asyncio.wait_for(read_request_head(reader), 10)
            tally.heads.append(head)
            is_first = len(tally.heads) == 1
            writer.write(first if is_first else OK_REPLY)
            await writer.drain()

    return tally.counting(serve)


async def _silent(reader, writer):
    """Read the request, never answer; return when the proxy hangs up."""
    await read_request_head(reader)
    await asyncio.wait_for(reader.read(), 10)


class Ending:
    """How an upstream handler's work ended: None when it completed, else what stopped it.

    Test servers cancel the handler of a client that went away, so a
    CancelledError is one of the endings, as is a failed read or write.
    """

    def __init__(self) -> None:
        self._future: asyncio.Future = asyncio.get_running_loop().create_future()

    @contextlib.contextmanager
    def recording(self):
        try:
            yield
        except BaseException as exc:
            self._future.set_result(exc)
            raise
        else:
            self._future.set_result(None)

    async def wait(self, timeout: float) -> BaseException | None:
        done, _ = await asyncio.wait({self._future}, timeout=timeout)
        assert done, f"the upstream handler was still running after {timeout}s"
        return self._future.result()


class _UploadSink:
    """An upstream handler that reads an upload to its end, counting the bytes; `ending` says how it ended."""

    def __init__(self) -> None:
        self.received = 0
        self.ending = Ending()

    async def handle(self, request: web.Request) -> web.Response:
        with self.ending.recording():
            async for chunk in request.content.iter_any():
                self.received += len(chunk)
        return web.Response(text="stored")


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def blackhole_url():
    """A 127.0.0.1 URL whose connects hang: a full listen backlog, and nobody accepting.

    Linux drops SYNs to a listener whose accept queue is full, so the
    connecting side just waits; a probe checks that this holds here.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(address)
    except (TimeoutError, socket.timeout):
        pass
    else:
        if not sys.platform.startswith("linux"):
            pytest.skip("filling a listen backlog does not make connects hang on this system")
        raise AssertionError("a connect to a full backlog completed: the blackhole does not work")
    finally:
        probe.close()
    yield f"http://{address[0]}:{address[1]}"
    for sock in (*fillers, listener):
        sock.close()


# --- the upstream cannot be reached or does not answer ---------------------------------


async def test_refused_connection_is_a_502_problem(start_proxy):
    """Nothing listens upstream: 502 with Proxy-Status error=connection_refused."""
    proxy = await start_proxy(config_yaml(f"http://127.0.0.1:{_free_port()}", upstream=FAST_UPSTREAM))
    reply = _parse(await raw_exchange(proxy.port, GET_CLOSE))
    problem = _assert_problem(reply, 502, "connection_refused")
    assert problem["instance"] == "/"


async def test_connect_timeout_is_a_504_problem(start_proxy, blackhole_url):
    """The upstream's SYNs go unanswered: 504 error=connection_timeout, after connect_timeout."""
    proxy = await start_proxy(config_yaml(blackhole_url, upstream="connect_timeout: 300ms\nread_timeout: 5s"))
    started = time.monotonic()
    reply = _parse(await raw_exchange(proxy.port, GET_CLOSE))
    elapsed = time.monotonic() - started
    _assert_problem(reply, 504, "connection_timeout")
    assert 0.25 < elapsed < 3, elapsed


async def test_no_response_headers_within_read_timeout_is_a_504_problem(raw_server, start_proxy):
    """The upstream takes the request and says nothing: 504 error=http_response_timeout."""
    tally = Tally()
    server = await raw_server(tally.counting(_silent))
    proxy = await start_proxy(config_yaml(server.url, upstream=FAST_UPSTREAM))
    started = time.monotonic()
    reply = _parse(await raw_exchange(proxy.port, GET_CLOSE))
    elapsed = time.monotonic() - started
    _assert_problem(reply, 504, "http_response_timeout")
    assert 0.4 < elapsed < 3, elapsed
    # The proxy gave up on that connection rather than leaving it to answer later.
    assert await tally.wait_until(lambda t: t.open == 0, 3)


# --- the upstream answers with something that is not valid HTTP ------------------------

_PROTOCOL = (502, "http_protocol_error")
_HEADERS_TOO_LARGE = (502, "http_response_header_section_size")


@pytest.mark.parametrize(
    "response, expected",
    [
        pytest.param(b"HTTP/1.1 abc " + MARKER + b"\r\nContent-Length: 0\r\n\r\n", _PROTOCOL, id="bad-status-line"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6 " + MARKER + b"\r\n", _PROTOCOL, id="not-http"),
        # Three digits, but not a status code (RFC 9110 §15: 100 to 599); llhttp reads them as 99 and 0.
        pytest.param(b"HTTP/1.1 099 " + MARKER + b"\r\nContent-Length: 2\r\n\r\nok", _PROTOCOL, id="status-099"),
        pytest.param(b"HTTP/1.1 000 " + MARKER + b"\r\nContent-Length: 2\r\n\r\nok", _PROTOCOL, id="status-000"),
        # RFC 9112 §6.3: a proxy must answer 502 to differing lengths; llhttp rejects any repeated Content-Length.
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 40\r\nX-Leak: " + MARKER
                     + b"\r\n\r\nhello" + MARKER, _PROTOCOL, id="two-content-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nX-Leak: " + MARKER
                     + b"\r\n\r\nhello", _PROTOCOL, id="two-equal-content-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-Leak: " + MARKER
                     + b"\r\n\r\n1d\r\n" + MARKER + b"\r\n0\r\n\r\n", _PROTOCOL, id="content-length-and-chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Leak: " + MARKER + b"\x00x\r\n\r\n",
                     _PROTOCOL, id="nul-in-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Leak: " + MARKER + b"\rx\r\n\r\n",
                     _PROTOCOL, id="bare-cr-in-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Leak: " + MARKER + b"a" * 100_000 + b"\r\n\r\n",
                     _HEADERS_TOO_LARGE, id="oversized-header"),
        # Sent in one write with its headers, the bad chunk size is seen before
        # the response is handed over, by both parsers.
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + MARKER + b"\r\n0\r\n\r\n",
                     _PROTOCOL, id="invalid-chunked-body"),
    ],
)
async def test_malformed_response_is_a_problem_and_its_connection_discarded(
    raw_server, start_proxy, response, expected
):
    """A broken upstream response: a 502 (504 if unrecognizable as a response), none of
    its bytes reach the client, and its connection is not reused."""
    tally = Tally()
    server = await raw_server(_replying(tally, response))
    proxy = await start_proxy(config_yaml(server.url, upstream=FAST_UPSTREAM))

    reply = _parse(await raw_exchange(proxy.port, GET_CLOSE))
    _assert_problem(reply, *expected)

    # The next request must not go down the connection that carried the broken response.
    after = _parse(await raw_exchange(proxy.port, GET_CLOSE))
    assert (after.status, after.body) == (200, b"ok")
    assert len(tally.heads) == 2
    assert tally.accepted == 2


async def test_upstream_that_is_not_http_and_hangs_up_is_a_502(raw_server, start_proxy):
    """An SSH server's answer: its banner, then a close. 502 every time, nothing leaked,
    and the request is not sent again (the banner was an answer of sorts)."""
    tally = Tally()

    async def ssh(reader, writer):
        tally.heads.append(await read_request_head(reader))
        writer.write(b"SSH-2.0-OpenSSH_9.6 " + MARKER + b"\r\n")
        await writer.drain()

    server = await raw_server(tally.counting(ssh))
    proxy = await start_proxy(config_yaml(server.url, upstream=FAST_UPSTREAM))
    for attempt in range(2):
        reply = _parse(await raw_exchange(proxy.port, GET_CLOSE))
        _assert_problem(reply, 502, "http_protocol_error")
    assert tally.accepted == 2


# --- the upstream dies after the response started --------------------------------------

_DIES_MID_BODY = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"x" * 1000 + b"\r\n",
}


def _dying(body_start: bytes):
    async def serve(reader, writer):
        await read_request_head(reader)
        writer.write(body_start)
        await writer.drain()
        await asyncio.sleep(0.2)  # let the head reach the client before the close

    return serve


@pytest.mark.parametrize("framing", list(_DIES_MID_BODY))
async def test_upstream_dying_mid_body_aborts_the_raw_client(raw_server, start_proxy, framing):
    """Headers went out, then the upstream closed: the client sees no complete body, no final chunk."""
    server = await raw_server(_dying(_DIES_MID_BODY[framing]))
    proxy = await start_proxy(config_yaml(server.url, upstream=FAST_UPSTREAM))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: only an abort ends it early
    received = b""
    try:
        for _ in range(100):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    if framing == "content-length":
        assert b"Content-Length: 1000000" in head
        assert len(body) < 1_000_000
    else:
        assert b"Transfer-Encoding: chunked" in head
        assert not body.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("framing", list(_DIES_MID_BODY))
async def test_upstream_dying_mid_body_is_an_error_for_an_http_client(raw_server, start_proxy, framing):
    """An HTTP client reading the body gets an error, never a clean (truncated) end."""
    server = await raw_server(_dying(_DIES_MID_BODY[framing]))
    proxy = await start_proxy(config_yaml(server.url, upstream=FAST_UPSTREAM))
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/") as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(response.read(), 5)


# --- the client goes away ----------------------------------------------------------------

MIB = 1024 * 1024


async def _upload_then_vanish(port: int, sent: int, announced: int = 10 * MIB, wait_for=None) -> None:
    """Start a POST announcing `announced` bytes, send `sent` of them, close the socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n".encode())
    writer.write(b"u" * sent)
    await writer.drain()
    if wait_for is not None:
        await wait_for()
    writer.close()
    await writer.wait_closed()


async def _download_then_vanish(port: int, read: int) -> None:
    """GET a large body, read `read` bytes of it, close the socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /down HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(read), 5)
    writer.close()
    await writer.wait_closed()


async def test_client_vanishing_mid_upload_cancels_the_upstream_request(aiohttp_server, start_proxy):
    """10 MB announced, 1 MB sent, socket closed: the upstream's body read fails within seconds."""
    sink = _UploadSink()

    app = web.Application()
    app.router.add_post("/up", sink.handle)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))

    async def upstream_got_some():
        deadline = time.monotonic() + 5
        while sink.received == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    await _upload_then_vanish(proxy.port, MIB, wait_for=upstream_got_some)
    assert sink.received > 0
    error = await sink.ending.wait(3)
    assert error is not None, "the upstream saw a complete request body"
    assert sink.received < 10 * MIB


async def test_client_vanishing_mid_download_closes_the_upstream_response(aiohttp_server, start_proxy):
    """The client reads 100 KB of a slow 32 MB download and hangs up: the upstream's writes fail."""
    ending = Ending()

    async def download(request):
        response = web.StreamResponse()
        response.content_length = 32 * MIB
        await response.prepare(request)
        with ending.recording():
            for _ in range(512):
                await response.write(b"d" * 65536)
                await asyncio.sleep(0.02)
        return response

    app = web.Application()
    app.router.add_get("/down", download)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    await _download_then_vanish(proxy.port, 100_000)
    closed_at = time.monotonic()
    error = await ending.wait(3)
    assert error is not None, "the upstream sent the whole body to nobody"
    assert time.monotonic() - closed_at < 3


async def test_many_vanishing_clients_leak_neither_memory_nor_upstream_connections(raw_server, start_proxy):
    """200 uploads and downloads abandoned midway: RSS stays flat, every upstream connection closes."""
    tally = Tally()

    async def serve(reader, writer):
        head = await read_request_head(reader)
        tally.heads.append(head)
        if head.startswith(b"POST"):
            for _ in range(1000):  # read until the proxy hangs up; never answer
                if not await asyncio.wait_for(reader.read(65536), 10):
                    return
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
            for _ in range(1600):  # at most the 100 MB announced
                writer.write(b"d" * 65536)
                await asyncio.wait_for(writer.drain(), 10)

    server = await raw_server(tally.counting(serve))
    proxy = await start_proxy(config_yaml(server.url))

    async def one(index: int) -> None:
        if index % 2:
            await _download_then_vanish(proxy.port, 65536)
        else:
            expected = len(tally.heads) + 1
            await _upload_then_vanish(
                proxy.port, 256 * 1024, wait_for=lambda: tally.wait_until(lambda t: len(t.heads) >= expected, 2)
            )

    for index in range(10):  # warm up: imports, caches, pools
        await one(index)
    assert await tally.wait_until(lambda t: t.open == 0)
    before = proxy.rss_kib()
    for index in range(200):
        await one(index)
    closed = await tally.wait_until(lambda t: t.open == 0)
    after = proxy.rss_kib()
    assert tally.accepted == 210
    assert closed, f"{tally.open} upstream connections still open"
    assert after - before < 20 * 1024, (before, after)


# --- slow and idle clients ------------------------------------------------------------------


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the peer closed the connection, and what it sent before that."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), limit):
            received += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


async def _timed_connection(aiohttp_server, start_proxy, header_timeout: str, keepalive_timeout: str,
                            served_first: bool):
    """A proxy with these timeouts in front of an upstream answering "ok", and a connection to it
    that has had one request served if `served_first`."""
    app = web.Application()
    app.router.add_get("/", _ok)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(
        str(server.make_url("")),
        top=f"server:\n  header_timeout: {header_timeout}\n  keepalive_timeout: {keepalive_timeout}",
    ))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    if served_first:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await _read_reply(reader)
        assert (reply.status, reply.body) == (200, b"ok")
    return proxy, reader, writer


@pytest.mark.parametrize("served_first", [False, True], ids=["fresh", "after-a-response"])
async def test_slowloris_is_cut_off_at_header_timeout_while_others_are_served(aiohttp_server, start_proxy, served_first):
    """Headers dripping in one byte per 200 ms, on a new or a kept-alive connection:
    closed after header_timeout, though bytes keep coming; other clients unaffected."""
    proxy, reader, writer = await _timed_connection(aiohttp_server, start_proxy, "1s", "30s", served_first)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")

    async def drip():
        for _ in range(40):
            await asyncio.sleep(0.2)
            writer.write(b"a")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        closing = asyncio.create_task(_closed_after(reader, 8))
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as client:
            async with client.get(proxy.url + "/") as response:
                assert (response.status, await response.text()) == (200, "ok")
        elapsed, received = await closing
    finally:
        dripping.cancel()
        writer.close()
    assert 0.8 < elapsed < 3, elapsed
    assert not received.startswith(b"HTTP/1.1 2"), received


@pytest.mark.parametrize("served_first", [False, True], ids=["fresh", "after-a-response"])
async def test_idle_connection_is_closed_after_keepalive_timeout(aiohttp_server, start_proxy, served_first):
    """A connection that sends nothing (at all, or after a response) is closed after keepalive_timeout."""
    _, reader, writer = await _timed_connection(aiohttp_server, start_proxy, "30s", "1s", served_first)
    try:
        elapsed, received = await _closed_after(reader, 8)
    finally:
        writer.close()
    assert 0.8 < elapsed < 3, elapsed
    assert received == b""


@pytest.mark.parametrize("served_first", [False, True], ids=["fresh", "after-a-response"])
async def test_a_head_begun_has_its_header_timeout_not_the_keepalive_one(aiohttp_server, start_proxy, served_first):
    """Part of a head, then the rest 1.5 s later: header_timeout (3 s) bounds it, not keepalive_timeout
    (1 s), which is for a connection with nothing on it. It was closed at the keep-alive timeout."""
    _, reader, writer = await _timed_connection(aiohttp_server, start_proxy, "3s", "1s", served_first)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(1.5)
        writer.write(b"\r\n")
        reply = await _read_reply(reader)
    finally:
        writer.close()
    assert (reply.status, reply.body) == (200, b"ok")


# --- request bodies over the route's limit ----------------------------------------------------

LIMITED = "max_body_size: 1MiB"


async def test_content_length_over_limit_is_a_413_before_the_body_is_sent(raw_server, start_proxy):
    """An announced body over max_body_size: 413 at once, and the upstream never hears of it."""
    tally = Tally()
    server = await raw_server(_replying(tally, OK_REPLY))
    proxy = await start_proxy(config_yaml(server.url, route=LIMITED))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {2 * MIB}\r\n\r\n".encode())
        reply = await _read_reply(reader, timeout=2)  # no body byte sent: the answer cannot wait for it
    finally:
        writer.close()
    _assert_problem(reply, 413)
    assert reply.headers["Connection"] == "close"
    await asyncio.sleep(0.2)
    assert tally.accepted == 0


async def test_expect_100_continue_over_limit_gets_413_and_no_continue(raw_server, start_proxy):
    """`Expect: 100-continue` with a too large Content-Length: 413, never a 100 Continue."""
    tally = Tally()
    server = await raw_server(_replying(tally, OK_REPLY))
    proxy = await start_proxy(config_yaml(server.url, route=LIMITED))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: {2 * MIB}\r\nExpect: 100-continue\r\n\r\n".encode())
        reply = await _read_reply(reader, timeout=2)
    finally:
        writer.close()
    assert not reply.raw.startswith(b"HTTP/1.1 100")
    _assert_problem(reply, 413)
    assert tally.accepted == 0


async def test_chunked_upload_growing_past_limit_is_a_413_and_aborted_upstream(aiohttp_server, start_proxy):
    """A chunked body that outgrows max_body_size: the client gets 413, the upstream an aborted
    request (never a complete, truncated one), and at most about the limit passes through."""
    sink = _UploadSink()

    app = web.Application()
    app.router.add_post("/", sink.handle)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), route=LIMITED))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")

    async def send():
        chunk = b"10000\r\n" + b"c" * 65536 + b"\r\n"
        for _ in range(8 * 16):  # up to 8 MiB; stopped once the answer is in
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.002)

    sending = asyncio.create_task(send())
    try:
        reply = await _read_reply(reader)
    finally:
        sending.cancel()
        writer.close()
    _assert_problem(reply, 413)
    error = await sink.ending.wait(3)
    assert error is not None, "the upstream took the truncated body as complete"
    assert sink.received <= MIB + 256 * 1024


# --- requests too broken to route ----------------------------------------------------------------


async def test_malformed_request_is_a_400_problem_without_echo(raw_server, start_proxy):
    """A header line without a colon: 400 problem+json, the bad bytes not repeated back."""
    tally = Tally()
    server = await raw_server(_replying(tally, OK_REPLY))
    proxy = await start_proxy(config_yaml(server.url))
    raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad " + MARKER + b" Header\r\n\r\n")
    reply = _parse(raw)
    _assert_problem(reply, 400)
    assert b" Header" not in raw
    assert tally.accepted == 0
