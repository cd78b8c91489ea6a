"""Hop-by-hop headers, forwarding headers and Host policy, seen from both ends."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from tests.conftest import capture_upstream, config_yaml, raw_exchange


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines if line)]


async def test_hop_by_hop_request_headers_are_removed(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 204 No Content\r\n\r\n")
    proxy = await start_proxy(config_yaml(server.url))
    await raw_exchange(proxy.port, (
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic eA==\r\n"
        b"Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-End: kept\r\n\r\n"
    ))
    names = {name for name, _ in _headers(seen[0])}
    for hop in ("connection", "x-hop", "keep-alive", "te", "trailer", "proxy-authorization",
                "proxy-connection", "upgrade"):
        assert hop not in names, hop
    assert "x-end" in names


async def test_h2c_upgrade_is_refused_and_request_served_as_http11(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    proxy = await start_proxy(config_yaml(server.url))
    reply = await raw_exchange(proxy.port, (
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    ))
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    names = {name for name, _ in _headers(seen[0])}
    assert not names & {"upgrade", "http2-settings", "connection"}


async def test_hop_by_hop_response_headers_are_removed(raw_server, start_proxy):
    server, _ = await capture_upstream(raw_server, (
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=9\r\n"
        b"Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nUpgrade: foo\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok"
    ))
    proxy = await start_proxy(config_yaml(server.url))
    reply = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    head = reply.split(b"\r\n\r\n")[0]
    names = {name for name, _ in _headers(head + b"\r\n")}
    for hop in ("x-internal", "keep-alive", "proxy-authenticate", "trailer", "upgrade"):
        assert hop not in names, hop
    assert "x-end" in names
    assert dict(_headers(head + b"\r\n"))["via"] == "1.1 errorproxy"


async def test_forwarding_headers_from_an_untrusted_client_are_replaced(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 204 No Content\r\n\r\n")
    proxy = await start_proxy(config_yaml(server.url))
    await raw_exchange(proxy.port, (
        b"GET / HTTP/1.1\r\nHost: shop.test:8443\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil.test\r\nForwarded: for=6.6.6.6\r\nVia: 1.0 edge\r\nConnection: close\r\n\r\n"
    ))
    headers = dict(_headers(seen[0]))
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "shop.test:8443"
    assert "forwarded" not in headers
    assert headers["via"] == "1.0 edge, 1.1 errorproxy"


async def test_forwarding_headers_from_a_trusted_proxy_are_extended(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 204 No Content\r\n\r\n")
    proxy = await start_proxy(config_yaml(server.url, top="trusted_proxies: [127.0.0.0/8]"))
    await raw_exchange(proxy.port, (
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: www.shop.test\r\nConnection: close\r\n\r\n"
    ))
    headers = dict(_headers(seen[0]))
    assert headers["x-forwarded-for"] == "203.0.113.9, 10.0.0.1, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == "www.shop.test"


async def test_host_header_policy(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 204 No Content\r\n\r\n")
    port = server.url.rsplit(":", 1)[1]
    upstream_host = await start_proxy(config_yaml(server.url))
    client_host = await start_proxy(config_yaml(server.url, route="host_header: client"))
    request = b"GET / HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n"
    await raw_exchange(upstream_host.port, request)
    await raw_exchange(client_host.port, request)
    assert dict(_headers(seen[0]))["host"] == f"127.0.0.1:{port}"
    assert dict(_headers(seen[1]))["host"] == "app.example.com"


async def test_request_id_is_kept_or_made_and_forwarded(aiohttp_server, start_proxy):
    seen = []

    async def handler(request):
        seen.append(request.headers.get("X-Request-ID"))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/", headers={"X-Request-ID": "abc-123"}):
            pass
        async with client.get(proxy.url + "/", headers={"X-Request-ID": "bad id\twith spaces"}):
            pass
    assert seen[0] == "abc-123"
    assert seen[1] != "bad id\twith spaces" and len(seen[1]) == 32


async def test_a_whole_response_keeps_the_upstream_s_fields_in_their_order(raw_server, start_proxy):
    """A small response that arrives whole leaves in one write: the upstream's fields byte for byte (obs-text
    too) and in their order (Content-Length where it was), hop-by-hop ones and those Connection names removed,
    then Via; its Date kept; the body framed by its length."""
    server, _ = await capture_upstream(raw_server, (
        b"HTTP/1.1 200 Fine Thanks\r\nX-First: 1\r\nContent-Length: 5\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
        b"Connection: keep-alive, X-Hop\r\nX-Hop: dropped\r\nKeep-Alive: timeout=5\r\nVia: 1.0 edge\r\n"
        b"Server: upstream/1\r\nX-Last: caf\xe9\r\n\r\nhello"))
    proxy = await start_proxy(config_yaml(server.url))
    answer = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert answer == (
        b"HTTP/1.1 200 Fine Thanks\r\nX-First: 1\r\nContent-Length: 5\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
        b"Server: upstream/1\r\nX-Last: caf\xe9\r\nVia: 1.0 edge, 1.1 errorproxy\r\nConnection: close\r\n\r\nhello")


async def test_connection_cannot_take_away_a_response_s_length(raw_server, start_proxy):
    """`Connection: Content-Length` names the message's own framing, not a hop's option: the length stays,
    so the client can tell where the body ends on a kept-alive connection."""
    server, _ = await capture_upstream(
        raw_server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Content-Length\r\n\r\nok")
    proxy = await start_proxy(config_yaml(server.url))
    answer = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: 2\r\n" in head + b"\r\n" and body == b"ok"
