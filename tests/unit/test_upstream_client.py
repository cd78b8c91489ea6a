"""The upstream HTTP/1.1 client (`proxy.upstream.pool`), driven in the test's own event loop.

Each test starts raw servers on 127.0.0.1 that write exact bytes, so the framing
is the test's to choose, and it checks both sides: what the pool returned or
raised, and what the server received (request bytes, connections accepted).
"""

from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator, Awaitable, Callable

import pytest
from multidict import CIMultiDict
from yarl import URL

from proxy.core.settings import UpstreamSettings
from proxy.upstream.errors import (
    ConnectFailed, ConnectTimeout, Disconnected, HeadersTooLarge, Malformed, PoolTimeout, ReadTimeout,
)
from proxy.core.targets import dial_key
from proxy.upstream.pool import ConnectionPool, Response

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstream:
    """A raw HTTP/1.1 server on 127.0.0.1: each connection runs `serve(upstream, reader, writer)`."""

    def __init__(self, serve: Callable[..., Awaitable[None]]) -> None:
        self.serve = serve
        self.accepted = 0
        self.requests: list[bytes] = []  # every request, head and body as received, in arrival order
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.port}")

    @property
    def open(self) -> int:
        return len(self._writers)

    @property
    def paths(self) -> list[str]:
        return [request.split(b" ", 2)[1].decode() for request in self.requests]

    async def start(self, port: int = 0) -> Upstream:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """As a killed process would: stop listening and reset every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        await until(lambda: not self._writers)

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request, its body read by Content-Length or chunked framing."""
        head = await reader.readuntil(b"\r\n\r\n")
        request = head
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                request += size_line + await reader.readexactly(int(size_line, 16) + 2)
                if int(size_line, 16) == 0:
                    break
        elif b"content-length:" in lowered:
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
            request += await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            await self.serve(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def answering(*replies: bytes, close: bool = False):
    """Answers the n-th request with replies[n] (the last one repeats), keeping the connection unless `close`."""

    async def serve(upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await upstream.read_request(reader)
            writer.write(replies[min(len(upstream.requests), len(replies)) - 1])
            await writer.drain()
            if close:
                return

    return serve


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def settings(**options) -> UpstreamSettings:
    values = dict(connect_timeout=1.0, read_timeout=1.0, max_connections=4, idle_timeout=10.0, max_line_size=1024)
    return UpstreamSettings(name="test", url=URL("http://127.0.0.1:1"), **{**values, **options})


@pytest.fixture
async def serve():
    """`await serve(handler)`: a started `Upstream`; all are stopped at teardown."""
    started: list[Upstream] = []

    async def start(handler, port: int = 0) -> Upstream:
        upstream = await Upstream(handler).start(port)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


@pytest.fixture
async def make_pool():
    """`make_pool(**settings)`: a ConnectionPool in this test's loop, closed at teardown."""
    pools: list[ConnectionPool] = []

    def make(**options) -> ConnectionPool:
        pool = ConnectionPool(settings(**options))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()
    await until(lambda: all(pool.open_connections == 0 for pool in pools))


def refused_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def unanswered_port():
    """A port on 127.0.0.1 whose listen backlog is full: a connection to it is never made."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.socket()
    filler.setblocking(False)
    filler.connect_ex(("127.0.0.1", port))  # takes the backlog's one place
    yield port
    filler.close()
    listener.close()


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def send(pool: ConnectionPool, target: Upstream | URL, method: str = "GET", path: str = "/",
               headers: dict[str, str] | None = None, body: AsyncIterator[bytes] | None = None) -> Response:
    url = target.url if isinstance(target, Upstream) else target
    return await pool.request(dial_key(url), method, path, CIMultiDict(headers or {"Host": "x"}), body)


async def read_all(response: Response) -> bytes:
    """The whole body; the connection then goes back to the pool (or is closed, if the read failed)."""
    data = b""
    try:
        while chunk := await response.read():
            data += chunk
    except BaseException:
        response.close()
        raise
    response.release()
    return data


async def fetch(pool: ConnectionPool, target: Upstream | URL, method: str = "GET", path: str = "/",
                **options) -> tuple[int, bytes]:
    response = await send(pool, target, method, path, **options)
    return response.status, await read_all(response)


# What goes out


@pytest.mark.parametrize("method, headers, body, sent", [
    pytest.param("GET", {"Host": "x", "X-A": "1"}, None,
                 b"GET /p?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n", id="no-body"),
    pytest.param("PUT", {"Host": "x", "Content-Length": "5"}, [b"hel", b"lo"],
                 b"PUT /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", id="body-with-length-as-is"),
    pytest.param("POST", {"Host": "x"}, [b"hel", b"lo"],
                 b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                 id="body-without-length-chunked"),
    pytest.param("POST", {"Host": "x"}, [],
                 b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 id="empty-body-stream"),
])
async def test_the_request_goes_out_as_one_exact_head_and_its_body(serve, make_pool, method, headers, body, sent):
    upstream = await serve(answering(OK))
    pool = make_pool()
    for _ in range(2):
        answer = await fetch(pool, upstream, method, "/p?q=1", headers=headers,
                             body=stream(*body) if body is not None else None)
        assert answer == (200, b"ok")
    assert upstream.requests == [sent, sent]
    assert upstream.accepted == 1


# How a response ends, and whether its connection is used again


@pytest.mark.parametrize("method, reply, close, status, body, reused", [
    pytest.param("GET", OK, False, 200, b"ok", True, id="content-length"),
    pytest.param("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;ext=1\r\n!!!\r\n"
                        b"0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n", False, 200, b"ok!!!", True,
                 id="chunked-with-extension-and-trailers"),
    pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", False, 200, b"", True,
                 id="HEAD-with-content-length"),
    pytest.param("GET", b"HTTP/1.1 204 No Content\r\n\r\n", False, 204, b"", True, id="204"),
    pytest.param("GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nContent-Length: 10\r\n\r\n", False, 304, b"",
                 True, id="304-length-of-the-unsent-body"),
    pytest.param("GET", b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False, 200, b"ok", True, id="100-continue-skipped"),
    pytest.param("GET", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                        b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False, 200, b"ok", True, id="103-and-100-skipped"),
    pytest.param("GET", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", False, 200,
                 b"ok", True, id="HTTP/1.0-keep-alive"),
    pytest.param("GET", b"HTTP/1.1 200 OK\r\n\r\nuntil the close", True, 200, b"until the close", False,
                 id="close-delimited"),
    pytest.param("GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False, 200, b"ok",
                 False, id="connection-close"),
    pytest.param("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False, 200, b"ok", False, id="HTTP/1.0"),
    pytest.param("GET", OK + b"EXTRA", False, 200, b"ok", False, id="bytes-after-the-end"),
    pytest.param("GET", OK + OK, False, 200, b"ok", False, id="a-second-response-unasked"),
    pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, 200, b"", False,
                 id="HEAD-answered-with-a-body"),
])
async def test_a_response_ends_where_its_framing_says(serve, make_pool, method, reply, close, status, body, reused):
    upstream = await serve(answering(reply, close=close))
    pool = make_pool()
    for n in range(2):
        response = await send(pool, upstream, method, f"/{n}")
        assert response.status == status
        assert "Link" not in response.headers  # an interim response's headers are not the final one's
        assert await read_all(response) == body
    assert upstream.paths == ["/0", "/1"]
    assert upstream.accepted == (1 if reused else 2)
    # A connection not reused is closed by the pool, not left open at the upstream.
    assert await until(lambda: upstream.open == (1 if reused else 0))
    assert pool.open_connections == (1 if reused else 0)


# Failures


async def _write(upstream, reader, writer, parts: tuple[bytes, ...]) -> None:
    await upstream.read_request(reader)
    for n, part in enumerate(parts):
        if n:
            await asyncio.sleep(0.05)  # the head first, on its own
        writer.write(part)
        await writer.drain()


def _stall_after(*parts: bytes):
    async def serve(upstream, reader, writer):
        await _write(upstream, reader, writer, parts)
        await reader.read()  # until the pool lets go

    return serve


def _close_after(*parts: bytes):
    async def serve(upstream, reader, writer):
        await _write(upstream, reader, writer, parts)

    return serve


_MANY_HEADERS = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 1000) for n in range(110))


@pytest.mark.parametrize("serve_with, failure, when", [
    pytest.param(_stall_after(b"HTTP/1.1 2x0 OK\r\n\r\n"), Malformed, "head", id="malformed-status-line"),
    pytest.param(_stall_after(b"SSH-2.0-OpenSSH_9.6\r\n"), Malformed, "head", id="not-http"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"), Malformed,
                 "head", id="two-content-lengths"),
    pytest.param(_stall_after(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"),
                 Malformed, "head", id="101-unasked"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"), HeadersTooLarge, "head",
                 id="header-line-too-long"),
    pytest.param(_stall_after(b"HTTP/1.1 200 " + b"O" * 2000 + b"\r\n\r\n"), HeadersTooLarge, "head",
                 id="status-line-too-long"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\n" + _MANY_HEADERS + b"\r\n"), HeadersTooLarge, "head",
                 id="head-too-large"),
    pytest.param(_stall_after(b""), ReadTimeout, "head", id="silence"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\nContent-Le"), ReadTimeout, "head", id="stall-mid-head"),
    pytest.param(_close_after(b""), Disconnected, "head", id="close-before-the-head"),
    pytest.param(_close_after(b"HTTP/1.1 200 OK\r\nContent-Le"), Disconnected, "head", id="close-mid-head"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"), ReadTimeout, "body",
                 id="stall-mid-body"),
    pytest.param(_close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"), Disconnected, "body",
                 id="close-mid-body"),
    pytest.param(_close_after(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"), Disconnected,
                 "body", id="close-mid-chunked-body"),
    pytest.param(_stall_after(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"zz\r\n"), Malformed, "body",
                 id="bad-chunk-size"),
])
async def test_a_broken_response_raises_its_failure_and_closes_the_connection(serve, make_pool, serve_with, failure,
                                                                             when):
    upstream = await serve(serve_with)
    pool = make_pool(read_timeout=1.0)  # long enough that no hiccup of a loaded machine looks like one
    loop = asyncio.get_running_loop()
    started = loop.time()
    if when == "head":
        with pytest.raises(failure):
            await send(pool, upstream)
    else:
        response = await send(pool, upstream)
        with pytest.raises(failure):
            await read_all(response)
    elapsed = loop.time() - started
    assert 1.0 <= elapsed < 3.0 if failure is ReadTimeout else elapsed < 1.0
    assert await until(lambda: upstream.open == 0 and pool.open_connections == 0)
    assert upstream.accepted == 1  # tried once: nothing reached the upstream twice


@pytest.mark.parametrize("method, body, sent_again", [
    pytest.param("GET", None, True, id="GET"),
    pytest.param("DELETE", None, True, id="DELETE"),
    pytest.param("POST", None, False, id="POST"),
    # Idempotent, but its body is a stream that cannot be sent twice.
    pytest.param("PUT", b"twelve bytes", False, id="PUT-with-body"),
])
async def test_a_kept_alive_connection_dropped_under_a_request_is_retried_only_when_safe(
        serve, make_pool, method, body, sent_again):
    async def one_then_drop(upstream, reader, writer):
        await upstream.read_request(reader)
        writer.write(OK)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: hang up on it
        upstream.requests.append(b"dropped")
        writer.transport.abort()

    upstream = await serve(one_then_drop)
    pool = make_pool()
    assert await fetch(pool, upstream, "GET", "/1") == (200, b"ok")
    headers = {"Host": "x", "Content-Length": str(len(body))} if body else None
    second = fetch(pool, upstream, method, "/2", headers=headers, body=stream(body) if body else None)
    if sent_again:
        assert await second == (200, b"ok")
        assert upstream.requests[1:] == [b"dropped", f"{method} /2 HTTP/1.1\r\nHost: x\r\n\r\n".encode()]
        assert upstream.accepted == 2
    else:
        with pytest.raises(Disconnected):
            await second
        assert upstream.requests[1:] == [b"dropped"]
        assert upstream.accepted == 1


# The pool: waiting for a connection


async def test_time_spent_waiting_for_the_clients_body_is_not_the_upstreams(serve, make_pool):
    """A request body that pauses longer than read_timeout (a slow client) is no upstream timeout:
    the upstream cannot answer before it has the body."""
    upstream = await serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    pool = make_pool(read_timeout=0.2)

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"he"
        await asyncio.sleep(0.5)
        yield b"llo"

    assert await fetch(pool, upstream, "PUT", headers={"Host": "x", "Content-Length": "5"},
                       body=slow_body()) == (200, b"ok")
    assert upstream.requests[0].endswith(b"\r\n\r\nhello")


async def test_a_waiter_gets_the_connection_released_before_it(serve, make_pool):
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, upstream, path="/1")
    second = asyncio.ensure_future(fetch(pool, upstream, path="/2"))
    await asyncio.sleep(0.05)
    assert not second.done()
    assert upstream.paths == ["/1"]
    assert await read_all(held) == b"ok"
    assert await second == (200, b"ok")
    assert upstream.paths == ["/1", "/2"]
    assert upstream.accepted == 1


@pytest.mark.parametrize("let_go", ["release", "close"])
async def test_waiters_are_served_first_come_first_served(serve, make_pool, let_go):
    """Whether the held connection comes back (handed on) or closes (a slot to dial in), order holds."""
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, upstream, path="/0")
    waiting = []
    for n in range(1, 6):
        waiting.append(asyncio.ensure_future(fetch(pool, upstream, path=f"/{n}")))
        await asyncio.sleep(0.01)
    if let_go == "release":
        await read_all(held)
    else:
        held.close()
    assert await asyncio.gather(*waiting) == [(200, b"ok")] * 5
    assert upstream.paths == ["/0", "/1", "/2", "/3", "/4", "/5"]
    assert upstream.accepted == (1 if let_go == "release" else 2)


async def test_a_waiter_gives_up_after_connect_plus_read_timeout(serve, make_pool):
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1, connect_timeout=0.1, read_timeout=0.2)
    held = await send(pool, upstream, path="/1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PoolTimeout, match="all 1 connections stayed busy"):
        await send(pool, upstream, path="/2")
    assert 0.3 <= loop.time() - started < 1.0
    await read_all(held)
    # The waiter that gave up is not handed the connection: the next request gets it.
    assert await fetch(pool, upstream, path="/3") == (200, b"ok")
    assert upstream.paths == ["/1", "/3"]
    assert upstream.accepted == 1


@pytest.mark.parametrize("when", ["while-queued", "as-it-is-handed-the-connection"])
async def test_a_cancelled_waiter_leaves_the_connection_to_the_next(serve, make_pool, when):
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, upstream, path="/0")
    first = asyncio.ensure_future(fetch(pool, upstream, path="/1"))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(fetch(pool, upstream, path="/2"))
    await asyncio.sleep(0.01)
    if when == "while-queued":
        first.cancel()
        await read_all(held)
    else:
        assert await held.read() == b"ok"
        held.release()  # hands the connection to `first`, which is cancelled before it runs
        first.cancel()
    assert await second == (200, b"ok")
    assert first.cancelled()
    assert upstream.paths == ["/0", "/2"]
    assert upstream.accepted == 1


async def test_a_released_connection_makes_room_for_a_waiter_to_another_target(serve, make_pool):
    one, two = await serve(answering(OK)), await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, one)
    waiting = asyncio.ensure_future(fetch(pool, two))
    await asyncio.sleep(0.01)
    await read_all(held)
    assert await waiting == (200, b"ok")
    assert await until(lambda: one.open == 0)
    assert (one.accepted, two.accepted, pool.open_connections) == (1, 1, 1)


async def test_a_waiter_cancelled_as_it_is_given_a_slot_passes_the_slot_on(serve, make_pool):
    one, two = await serve(answering(OK)), await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, one)
    first = asyncio.ensure_future(fetch(pool, two, path="/1"))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(fetch(pool, two, path="/2"))
    await asyncio.sleep(0.01)
    assert await held.read() == b"ok"
    held.release()  # closes the connection to `one` and gives its slot to `first`, cancelled before it runs
    first.cancel()
    assert await asyncio.wait_for(second, 0.5) == (200, b"ok")
    assert two.paths == ["/2"]
    assert pool.open_connections == 1


async def test_an_idle_connection_to_another_target_is_closed_to_make_room(serve, make_pool):
    one, two = await serve(answering(OK)), await serve(answering(OK))
    pool = make_pool(max_connections=1)
    assert await fetch(pool, one) == (200, b"ok")
    assert await fetch(pool, two) == (200, b"ok")
    assert await until(lambda: one.open == 0)
    assert (two.open, pool.open_connections) == (1, 1)


async def test_idle_connections_are_closed_after_idle_timeout(serve, make_pool):
    upstream = await serve(answering(OK))
    pool = make_pool(idle_timeout=0.2)
    loop = asyncio.get_running_loop()
    assert await fetch(pool, upstream) == (200, b"ok")
    released = loop.time()
    assert upstream.open == 1
    assert await until(lambda: upstream.open == 0)
    assert 0.2 <= loop.time() - released < 1.0
    assert pool.open_connections == 0
    assert await fetch(pool, upstream) == (200, b"ok")
    assert upstream.accepted == 2


async def test_a_closed_pool_fails_its_waiters_and_dials_no_more(serve, make_pool):
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1)
    held = await send(pool, upstream)
    waiting = asyncio.ensure_future(send(pool, upstream))
    await asyncio.sleep(0.01)
    await pool.close()
    with pytest.raises(Disconnected, match="closed"):
        await waiting
    assert await until(lambda: upstream.open == 0)
    with pytest.raises(Disconnected, match="closed"):
        await send(pool, upstream)
    assert upstream.accepted == 1
    assert await read_all(held) == b"ok"  # what had arrived is still there to read


# The pool: dials that fail while requests wait


async def test_waiters_behind_refused_dials_are_all_answered_at_once(make_pool):
    """Each failed dial frees its slot for the next waiter, which dials in turn."""
    pool = make_pool(max_connections=2, connect_timeout=1.0, read_timeout=2.0)
    target = URL(f"http://127.0.0.1:{refused_port()}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(send(pool, target) for _ in range(8)), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectFailed] * 8, results
    assert all(isinstance(result.os_error, ConnectionRefusedError) for result in results)
    assert loop.time() - started < 1.5  # not the 3 s a waiter may wait
    assert pool.open_connections == 0


async def test_waiters_behind_dials_that_time_out_each_get_their_own_dial(make_pool, unanswered_port):
    pool = make_pool(max_connections=2, connect_timeout=0.2, read_timeout=2.0)
    target = URL(f"http://127.0.0.1:{unanswered_port}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(send(pool, target) for _ in range(4)), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectTimeout] * 4, results
    assert 0.4 <= loop.time() - started < 1.9  # two rounds of two dials, not the 2.2 s a waiter may wait
    assert pool.open_connections == 0


async def test_a_cancelled_dial_gives_its_slot_to_the_next_waiter(serve, make_pool, unanswered_port):
    upstream = await serve(answering(OK))
    pool = make_pool(max_connections=1, connect_timeout=5.0)
    dialing = asyncio.ensure_future(send(pool, URL(f"http://127.0.0.1:{unanswered_port}")))
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(fetch(pool, upstream))
    await asyncio.sleep(0.01)
    dialing.cancel()
    assert await asyncio.wait_for(waiting, 0.5) == (200, b"ok")
    assert pool.open_connections == 1


async def test_the_pool_recovers_as_soon_as_a_restarted_upstream_is_back(serve, make_pool):
    """Under load, the upstream goes away and comes back on the same port: requests queued
    behind the failing dials are answered at once, and succeed again as soon as it is back."""
    upstream = await serve(answering(OK))
    port = upstream.port
    pool = make_pool(max_connections=2, connect_timeout=1.0, read_timeout=2.0)
    loop = asyncio.get_running_loop()
    outcomes: list[tuple[float, float, str]] = []  # (started, ended, "ok" or the failure's name)
    running = True

    async def client() -> None:
        while running:
            started = loop.time()
            try:
                await fetch(pool, upstream.url)
                outcome = "ok"
            except (ConnectFailed, Disconnected, PoolTimeout) as exc:
                outcome = type(exc).__name__
                await asyncio.sleep(0.01)
            outcomes.append((started, loop.time(), outcome))

    clients = [asyncio.ensure_future(client()) for _ in range(10)]
    await asyncio.sleep(0.2)
    await upstream.stop()
    stopped = loop.time()
    await asyncio.sleep(0.5)
    await upstream.start(port)
    restarted = loop.time()
    await asyncio.sleep(0.6)
    running = False
    await asyncio.wait_for(asyncio.gather(*clients), 3.5)

    timeline = f"stopped at {stopped:.3f}, restarted at {restarted:.3f}, outcomes {outcomes}"
    assert all(outcome != "PoolTimeout" for _, _, outcome in outcomes), timeline
    while_down = [(start, end) for start, end, _ in outcomes if stopped <= start < restarted - 0.2]
    assert while_down and max(end - start for start, end in while_down) < 0.3, timeline
    first_success = min(end for _, end, outcome in outcomes if outcome == "ok" and end > restarted)
    assert first_success - restarted < 0.3, timeline
    assert all(outcome == "ok" for start, _, outcome in outcomes if start > restarted + 0.2), timeline
    assert upstream.open <= 2
