"""Message framing: bodiless responses, interim responses, 100-continue, chunked, pooling."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml, raw_exchange, read_request_head


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response's head and its Content-Length body, from a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length) if length else b""


@pytest.mark.parametrize(
    "method, upstream_reply",
    [
        pytest.param(b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n", id="head"),
        pytest.param(b"GET", b"HTTP/1.1 204 No Content\r\nX-Marker: 1\r\n\r\n", id="204"),
        pytest.param(b"GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n', id="304"),
    ],
)
async def test_bodiless_responses_carry_no_body(raw_server, start_proxy, method, upstream_reply):
    async def upstream(reader, writer):
        while True:
            await read_request_head(reader)
            writer.write(upstream_reply)
            await writer.drain()

    server = await raw_server(upstream)
    proxy = await start_proxy(config_yaml(server.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    # Two requests on one connection: a stray body byte would corrupt the second response.
    writer.write(method + b" /a HTTP/1.1\r\nHost: x\r\n\r\n" + method + b" /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = upstream_reply.split(b"\r\n")[0]
    responses = data.split(status + b"\r\n")
    assert len(responses) == 3 and responses[0] == b"", data
    for response in responses[1:]:
        assert response.endswith(b"\r\n\r\n"), data
        assert b"transfer-encoding" not in response.lower()
    if method == b"HEAD":
        assert b"Content-Length: 5\r\n" in responses[1]


@pytest.mark.parametrize(("client", "passed_on"), [(b"HTTP/1.1", True), (b"HTTP/1.0", False)])
async def test_interim_1xx_responses_are_passed_on_and_not_mistaken_for_the_final_one(raw_server, start_proxy,
                                                                                       client, passed_on):
    # RFC 9110 §15.2: a proxy forwards 1xx responses (here a 102 and a 103, by the header rules of
    # any response), but none to an HTTP/1.0 client; a 100 Continue the proxy did not ask for is dropped.
    async def upstream(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 102 Processing\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nConnection: X-Hop\r\n"
                     b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        await writer.drain()

    server = await raw_server(upstream)
    proxy = await start_proxy(config_yaml(server.url))
    reply = await raw_exchange(proxy.port, b"GET / " + client + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    interims = (b"HTTP/1.1 102 Processing\r\nVia: 1.1 errorproxy\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nVia: 1.1 errorproxy\r\n\r\n")
    final = reply.removeprefix(interims) if passed_on else reply
    assert reply.startswith(interims) == passed_on, reply
    assert final.startswith(client + b" 200 OK\r\n") and final.endswith(b"\r\n\r\nfinal"), reply
    assert b"100 Continue" not in reply and b"X-Hop" not in reply and b"Keep-Alive" not in reply


@pytest.mark.parametrize(("parts", "via"), [
    pytest.param([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"], b"1.1 errorproxy", id="1.1"),
    pytest.param([b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nfinal"], b"1.0 errorproxy", id="1.0"),
    pytest.param([b"HTTP/1.", b"0 200 OK\r\nContent-Length: 5\r\n\r\nfinal"], b"1.0 errorproxy", id="1.0-split"),
    pytest.param([b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                  b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nfinal"], b"1.0 errorproxy", id="1.0-after-1.1-interim"),
])
async def test_via_names_the_version_of_the_final_response(raw_server, start_proxy, parts, via):
    """The response's version (named in Via) is the final response's, however its bytes arrive."""
    async def upstream(reader, writer):
        await read_request_head(reader)
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)  # each part a read of its own

    server = await raw_server(upstream)
    proxy = await start_proxy(config_yaml(server.url))
    reply = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if reply.startswith(b"HTTP/1.1 103 "):  # passed on first
        reply = reply.partition(b"\r\n\r\n")[2]
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nfinal")
    assert b"\r\nVia: " + via + b"\r\n" in reply


async def _storing(aiohttp_server, start_proxy, bodies: list[bytes]):
    """A proxy in front of an upstream that answers a PUT to /doc "stored", keeping its body in `bodies`."""
    async def handler(request):
        bodies.append(await request.read())
        return web.Response(text="stored")

    app = web.Application()
    app.router.add_put("/doc", handler)
    server = await aiohttp_server(app)
    return await start_proxy(config_yaml(str(server.make_url(""))))


async def test_expect_100_continue(aiohttp_server, start_proxy):
    bodies: list[bytes] = []
    proxy = await _storing(aiohttp_server, start_proxy, bodies)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"PUT /doc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    await writer.drain()
    head, body = await _read_response(reader)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"stored"
    assert bodies == [b"hello"]


async def test_expect_100_continue_from_an_http_1_0_client_is_ignored(aiohttp_server, start_proxy):
    # RFC 9110 §10.1.1: an expectation in an HTTP/1.0 request MUST be ignored; §15.2: no 1xx goes to a 1.0 client.
    bodies: list[bytes] = []
    proxy = await _storing(aiohttp_server, start_proxy, bodies)
    reply = await raw_exchange(proxy.port, b"PUT /doc HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\n"
                                           b"Expect: 100-continue\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n") and reply.endswith(b"\r\n\r\nstored"), reply
    assert b"100 Continue" not in reply
    assert bodies == [b"hello"]


async def test_chunked_bodies_stream_both_ways(aiohttp_server, start_proxy):
    async def handler(request):
        assert request.headers.get("Transfer-Encoding") == "chunked"
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in request.content.iter_any():
            await response.write(chunk[::-1])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))

    async def parts():
        for index in range(20):
            yield bytes([65 + index]) * 1000

    async with aiohttp.ClientSession() as client:
        async with client.post(proxy.url + "/", data=parts()) as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            body = await response.read()
    assert len(body) == 20_000 and sorted(set(body)) == list(range(65, 85))


async def test_upstream_connections_are_kept_alive_and_capped(aiohttp_server, start_proxy):
    connections: list = []
    active = 0
    most_active = 0

    async def handler(request):
        nonlocal active, most_active
        connections.append(request.transport)  # held, so each connection's object stays distinct
        active += 1
        most_active = max(most_active, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), upstream="max_connections: 3"))
    async with aiohttp.ClientSession() as client:
        async def one():
            async with client.get(proxy.url + "/") as response:
                assert await response.text() == "ok"

        await asyncio.gather(*(one() for _ in range(30)))
        await asyncio.gather(*(one() for _ in range(30)))
    assert most_active == 3
    assert len({id(t) for t in connections}) == 3  # 60 requests over 3 reused upstream connections
