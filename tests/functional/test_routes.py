"""Routes choose the upstream; unmatched requests get a 404 problem."""

from __future__ import annotations

import json

from tests.conftest import raw_exchange, read_request_head


async def _named_upstream(raw_server, name: str, seen: list):
    async def upstream(reader, writer):
        head = await read_request_head(reader)
        seen.append((name, head.split(b"\r\n")[0].decode()))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name.encode()))
        await writer.drain()

    return await raw_server(upstream)


async def test_routes_pick_upstreams_in_order(raw_server, start_proxy):
    seen: list = []
    api = await _named_upstream(raw_server, "api", seen)
    admin = await _named_upstream(raw_server, "admin", seen)
    site = await _named_upstream(raw_server, "site", seen)
    config = f"""
listen: 127.0.0.1:0
upstreams:
  api: {{url: "{api.url}/v2"}}
  admin: {{url: "{admin.url}"}}
  site: {{url: "{site.url}"}}
routes:
  - name: admin-host
    match: {{host: ["admin.example.com", "*.admin.example.com"]}}
    upstream: admin
  - name: api-writes
    match: {{path_prefix: /api/, methods: [PUT, POST]}}
    upstream: api
    strip_prefix: /api
  - name: reports
    match: {{path_regex: "^/reports/[0-9]+$"}}
    upstream: admin
  - name: static
    match: {{path_prefix: /static/}}
    upstream: site
"""
    proxy = await start_proxy(config)
    cases = [
        (b"GET /x HTTP/1.1\r\nHost: admin.example.com\r\n", b"admin", "GET /x HTTP/1.1"),
        (b"GET /x HTTP/1.1\r\nHost: eu.admin.example.com:8080\r\n", b"admin", "GET /x HTTP/1.1"),
        (b"PUT /api/doc/1?v=2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n", b"api", "PUT /v2/doc/1?v=2 HTTP/1.1"),
        (b"POST /%61pi/doc HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n", b"api", "POST /v2/doc HTTP/1.1"),
        (b"GET /reports/42 HTTP/1.1\r\nHost: a.test\r\n", b"admin", "GET /reports/42 HTTP/1.1"),
        (b"GET /static/app.js HTTP/1.1\r\nHost: a.test\r\n", b"site", "GET /static/app.js HTTP/1.1"),
    ]
    for request, body, upstream_line in cases:
        seen.clear()
        reply = await raw_exchange(proxy.port, request + b"Connection: close\r\n\r\n")
        assert reply.endswith(b"\r\n\r\n" + body), (request, reply)
        assert seen[0][1] == upstream_line, (request, seen)


async def test_no_matching_route_is_a_404_problem(raw_server, start_proxy):
    seen: list = []
    api = await _named_upstream(raw_server, "api", seen)
    config = f"""
listen: 127.0.0.1:0
upstreams: {{api: "{api.url}"}}
routes:
  - name: api
    match: {{path_prefix: /api/, methods: [GET]}}
    upstream: api
"""
    proxy = await start_proxy(config)
    for request in (b"GET /other HTTP/1.1\r\n", b"DELETE /api/x HTTP/1.1\r\n", b"GET /api/../admin HTTP/1.1\r\n"):
        reply = await raw_exchange(proxy.port, request + b"Host: a.test\r\nX-Request-ID: r-1\r\nConnection: close\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404 Not Found\r\n"), reply
        assert b"Content-Type: application/problem+json" in head
        assert b"Proxy-Status: errorproxy; error=destination_not_found" in head
        assert b"Cache-Control: no-store" in head
        problem = json.loads(body)
        assert problem["status"] == 404 and problem["request_id"] == "r-1"
    assert seen == []


async def test_a_host_that_is_not_a_host_is_a_400_problem_and_a_name_with_the_root_dot_is_its_name(raw_server,
                                                                                                      start_proxy):
    # RFC 9112 §3.2: a Host field value that is not host[:port] is answered 400, as nginx does,
    # never forwarded (upstream as Host or X-Forwarded-Host). "example.com." names example.com.
    seen: list = []
    admin = await _named_upstream(raw_server, "admin", seen)
    site = await _named_upstream(raw_server, "site", seen)
    config = f"""
listen: 127.0.0.1:0
upstreams:
  admin: {{url: "{admin.url}"}}
  site: {{url: "{site.url}"}}
routes:
  - name: admin-host
    match: {{host: ["admin.example.com"]}}
    upstream: admin
    host_header: client
  - name: rest
    match: {{path_prefix: /}}
    upstream: site
"""
    proxy = await start_proxy(config)
    for host in (b"a b", b"a/b", b"evil.com/../", b"x..y", b'x"><script>', b"x:abc", b"[::1", b""):
        reply = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (host, reply)
        assert b"Content-Type: application/problem+json" in head
        assert json.loads(body)["status"] == 400
    assert seen == []
    for host in (b"admin.example.com.", b"ADMIN.example.com.:8080"):
        reply = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nadmin"), (host, reply)
    reply = await raw_exchange(proxy.port, b"GET http://admin.example.com./x HTTP/1.1\r\nHost: other\r\n"
                                           b"Connection: close\r\n\r\n")
    assert reply.endswith(b"\r\n\r\nadmin"), reply
    assert [name for name, _ in seen] == ["admin", "admin", "admin"]


async def test_a_problems_instance_is_the_path_as_it_came(raw_server, start_proxy):
    # RFC 9457 §3.1.5: a URI reference. Decoded, "%3F" started a query and "%2F" joined two segments.
    async def conflict(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = await raw_server(conflict)
    proxy = await start_proxy(f"""
listen: 127.0.0.1:0
upstreams: {{app: "{server.url}"}}
routes:
  - name: docs
    match: {{path_prefix: /docs/}}
    upstream: app
""")
    for target, expected in ((b"/docs/a%20b%2Fc%3F%23?x=1", "/docs/a%20b%2Fc%3F%23"),
                             (b"/other/a%2Fb?x=1", "/other/a%2Fb"),
                             (b"http://a.test/docs/x%3Fy?z", "/docs/x%3Fy")):
        request = b"GET " + target + b" HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        reply = await raw_exchange(proxy.port, request)
        problem = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert problem["instance"] == expected, (target, problem)
