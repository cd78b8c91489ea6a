"""Upstream keep-alive connections: when one is reused, retried on, or let go."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import config_yaml, raw_exchange, read_request_head
from tests.functional.test_faults import Tally


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


GET = b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def _keepalive_upstream(tally: Tally, reply: bytes, requests_per_connection: int = 100):
    """Answers `reply` to each request, keeping the connection open for the next one."""

    async def serve(reader, writer):
        for _ in range(requests_per_connection):
            try:
                head = await read_request_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            tally.heads.append(head)
            writer.write(reply)
            await writer.drain()

    return tally.counting(serve)


@pytest.mark.parametrize("method, reply", [
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", id="GET-length"),
    pytest.param(b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", id="GET-chunked"),
    pytest.param(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", id="HEAD-with-length"),
    pytest.param(b"GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n", id="304"),
])
async def test_a_response_read_to_its_end_leaves_its_connection_for_the_next(raw_server, start_proxy, method, reply):
    tally = Tally()
    server = await raw_server(await _keepalive_upstream(tally, reply))
    proxy = await start_proxy(config_yaml(server.url))
    for n in range(3):
        answer = await raw_exchange(proxy.port, method + b" /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % n)
        assert answer.startswith(reply.split(b"\r\n")[0]), answer
    assert len(tally.heads) == 3
    assert tally.accepted == 1


async def test_a_body_ended_by_close_is_forwarded_whole_and_the_connection_not_reused(raw_server, start_proxy):
    """RFC 9112 §6.3: no Content-Length and not chunked, the body runs to the close."""
    tally = Tally()
    body = b"x" * 300_000 + b"end"

    async def until_close(reader, writer):
        tally.heads.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await raw_server(tally.counting(until_close))
    proxy = await start_proxy(config_yaml(server.url))
    for n in range(2):
        answer = await raw_exchange(proxy.port, GET % n)
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert _unchunk(rest) == body
    assert tally.accepted == 2


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2:]


@pytest.mark.parametrize("method, body, sent_again", [
    pytest.param(b"GET", b"", True, id="GET"),
    pytest.param(b"DELETE", b"", True, id="DELETE"),
    pytest.param(b"POST", b"", False, id="POST"),
    # Idempotent, but its body is a stream from the client that cannot be sent twice.
    pytest.param(b"PUT", b"twelve bytes", False, id="PUT-with-body"),
])
async def test_a_kept_alive_connection_the_upstream_dropped_is_retried_only_when_safe(
        raw_server, start_proxy, method, body, sent_again):
    """The upstream closes a pooled connection as the next request goes down it: an idempotent
    request without a body goes again on a new connection (RFC 9112 §9.3.1.1); others get 502."""
    tally = Tally()

    async def one_then_drop(reader, writer):
        tally.heads.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request_head(reader)  # the second request on this connection: hang up on it
        writer.transport.abort()

    server = await raw_server(tally.counting(one_then_drop))
    proxy = await start_proxy(config_yaml(server.url))
    first = await raw_exchange(proxy.port, GET % 1)
    assert first.startswith(b"HTTP/1.1 200 OK")
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    second = await raw_exchange(
        proxy.port, method + b" /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + length + b"\r\n" + body, timeout=5)
    if sent_again:
        assert second.startswith(b"HTTP/1.1 200 OK"), second
        assert tally.accepted == 2
    else:
        assert second.startswith(b"HTTP/1.1 502 "), second
        assert b"error=http_response_incomplete" in second
        assert tally.accepted == 1


async def test_pooled_connections_are_closed_after_idle_timeout(raw_server, start_proxy):
    tally = Tally()
    server = await raw_server(await _keepalive_upstream(tally, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    proxy = await start_proxy(config_yaml(server.url, upstream="idle_timeout: 300ms"))
    assert (await raw_exchange(proxy.port, GET % 1)).startswith(b"HTTP/1.1 200 OK")
    assert tally.open == 1
    assert await tally.wait_until(lambda t: t.open == 0, 3)
    assert (await raw_exchange(proxy.port, GET % 2)).startswith(b"HTTP/1.1 200 OK")
    assert tally.accepted == 2


async def test_an_upstream_stalling_mid_body_is_cut_at_read_timeout(raw_server, start_proxy):
    """Headers and part of the body, then silence: the client's connection is aborted, not left hanging."""
    tally = Tally()

    async def stall(reader, writer):
        tally.heads.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # returns when the proxy lets go of the connection

    server = await raw_server(tally.counting(stall))
    proxy = await start_proxy(config_yaml(server.url, upstream="read_timeout: 400ms"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await raw_exchange(proxy.port, GET % 1)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"part")
    assert 0.4 <= loop.time() - started < 3
    assert await tally.wait_until(lambda t: t.open == 0, 3)
    assert "http_response_timeout" in proxy.log()


@pytest.mark.slow
async def test_requests_succeed_again_soon_after_the_upstream_restarts_under_load(start_proxy):
    """20 clients keep a pool of 4 busy; the upstream is killed and is back on the same port a second
    later: requests succeed again at once, not only once the load stops. While it is down, each
    request is refused at once (502), none waits out connect_timeout + read_timeout (504)."""
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader, writer):
        writers.add(writer)
        try:
            while True:
                await read_request_head(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    async def kill(server: asyncio.AbstractServer) -> None:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # as the kernel does for a killed process
        await server.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = await start_proxy(config_yaml(f"http://127.0.0.1:{port}", upstream="""
        max_connections: 4
        connect_timeout: 1s
        read_timeout: 2s
    """))
    loop = asyncio.get_running_loop()
    outcomes: list[tuple[float, float, int]] = []  # (started, ended, status); 0: no answer
    running = True

    async def client(session: aiohttp.ClientSession) -> None:
        while running:
            started = loop.time()
            try:
                async with session.get(f"{proxy.url}/load") as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            outcomes.append((started, loop.time(), status))
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        clients = [asyncio.ensure_future(client(session)) for _ in range(20)]
        try:
            await asyncio.sleep(0.5)
            await kill(server)
            killed = loop.time()
            await asyncio.sleep(1.0)
            server = await asyncio.start_server(serve, "127.0.0.1", port)
            restarted = loop.time()
            await asyncio.sleep(2.0)
        finally:
            running = False
            await asyncio.gather(*clients)
            await kill(server)

    first_ok = min((end for _, end, status in outcomes if status == 200 and end > restarted), default=None)
    statuses = sorted({status for _, _, status in outcomes})
    slowest_while_down = max(end - started for started, end, _ in outcomes if killed <= started < restarted)
    timeline = (f"killed +0.000s, restarted +{restarted - killed:.3f}s, first 200 after the restart "
                f"{'never' if first_ok is None else f'+{first_ok - killed:.3f}s'}; slowest answer while down "
                f"{slowest_while_down:.3f}s; statuses {statuses}; {len(outcomes)} requests, "
                f"{sum(1 for *_, status in outcomes if status == 200)} answered 200")
    print(timeline)
    assert any(status == 200 and end < killed for _, end, status in outcomes), timeline
    assert slowest_while_down < 1.5, timeline  # a waiter may wait 3 s (connect + read timeout)
    assert first_ok is not None and first_ok - restarted < 1.0, timeline
    assert all(status == 200 for started, _, status in outcomes if started > restarted + 0.5), timeline
    assert 504 not in statuses, timeline
    assert "stayed busy" not in proxy.log()
