"""Byte-exact forwarding: methods, targets, headers, bodies, framing."""

from __future__ import annotations

import gzip

import aiohttp
from aiohttp import web

from tests.conftest import config_yaml, raw_exchange, read_request_head


async def test_custom_method_and_raw_target_reach_upstream_unchanged(raw_server, start_proxy):
    seen = []

    async def upstream(reader, writer):
        seen.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server = await raw_server(upstream)
    proxy = await start_proxy(config_yaml(server.url))
    target = b"/dav/a%2Fb//c/./d/../e?x=%41&y=1+2&z"
    reply = await raw_exchange(proxy.port, b"PROPFIND " + target + b" HTTP/1.1\r\nHost: example.com\r\nDepth: 1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 207 Multi-Status\r\n")
    assert reply.endswith(b"\r\n\r\nok")
    assert seen[0].startswith(b"PROPFIND " + target + b" HTTP/1.1\r\n")
    assert b"\r\nDepth: 1\r\n" in seen[0]


async def test_nothing_is_added_that_the_client_did_not_send(raw_server, start_proxy):
    seen = []

    async def upstream(reader, writer):
        seen.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = await raw_server(upstream)
    proxy = await start_proxy(config_yaml(server.url))
    await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Custom: 1\r\nConnection: close\r\n\r\n")
    names = [line.split(b":")[0].lower() for line in seen[0].split(b"\r\n")[1:] if line]
    assert sorted(names) == sorted([b"host", b"x-custom", b"x-forwarded-for", b"x-forwarded-proto",
                                    b"x-forwarded-host", b"x-real-ip", b"via", b"x-request-id"])


async def test_repeated_response_headers_keep_their_order(aiohttp_server, start_proxy):
    async def handler(request):
        response = web.Response(text="ok")
        for value in ("a=1; Path=/", "b=2; Path=/", "c=3; Path=/"):
            response.headers.add("Set-Cookie", value)
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/") as response:
            assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"]
            assert response.headers.getall("X-Multi") == ["one", "two"]


async def test_gzip_body_passes_both_ways_untouched(aiohttp_server, start_proxy):
    payload = gzip.compress(b"hello " * 1000)
    received = {}

    async def handler(request):
        received["encoding"] = request.headers.get("Content-Encoding")
        received["body"] = await request.read()
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    app = web.Application()
    app.router.add_post("/", handler)
    server = await aiohttp_server(app, auto_decompress=False)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.post(proxy.url + "/", data=payload, headers={"Content-Encoding": "gzip"}) as response:
            body = await response.read()
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Content-Length"] == str(len(payload))
    assert body == payload
    assert received == {"encoding": "gzip", "body": payload}
