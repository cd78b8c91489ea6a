"""Interception end to end: real upstream errors in, one actionable shape out."""

from __future__ import annotations

import gzip
import json

import aiohttp
import brotli
import pytest
from aiohttp import web

from tests.conftest import config_yaml, raw_exchange


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


PYTHON_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/legacy/app/views.py", line 88, in save_document\n'
    "    doc.save()\n"
    '  File "/usr/lib/python3.11/site-packages/orm/models.py", line 412, in save\n'
    "    raise OptimisticLockError(self.pk)\n"
    "orm.errors.OptimisticLockError: document 42 version 6 != 7\n"
)


def _app(routes: dict) -> web.Application:
    """An upstream whose GET/PUT/POST handlers answer from `routes`: path -> (status, headers, body)."""

    async def handler(request):
        status, headers, body = routes[request.path]
        return web.Response(status=status, headers=headers, body=body if isinstance(body, bytes) else body.encode())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def _proxy(aiohttp_server, start_proxy, routes: dict, route: str = "", top: str = ""):
    server = await aiohttp_server(_app(routes))
    return await start_proxy(config_yaml(str(server.make_url("")), route=route, top=top)), server


async def _get(proxy, path: str, method: str = "GET", accept: str | None = None, **kwargs):
    headers = {"X-Request-ID": "req-1"}
    if accept is not None:
        headers["Accept"] = accept
    async with aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("Accept",)) as client:
        async with client.request(method, proxy.url + path, headers=headers, **kwargs) as response:
            return response.status, response.headers, await response.read()


CONFLICT = (409, {"ETag": '"v7-doc"', "Server": "Apache/2.2.3 (CentOS)", "X-Powered-By": "PHP/5.3",
                  "Set-Cookie": "lock=1; Path=/", "Content-Type": "application/json"},
            json.dumps({"error": {"message": "Version conflict: document 42 was modified"}, "currentVersion": 7}))


async def test_conflict_becomes_an_actionable_problem(aiohttp_server, start_proxy):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/documents/42": CONFLICT}, route="""
errors:
  - status: 409
    type: https://errors.example.com/edit-conflict
    title: Edit conflict
    extensions: {current_version: /currentVersion}
""")
    status, headers, body = await _get(proxy, "/documents/42", "PUT", data=b"{}")
    assert status == 409
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem == {
        "type": "https://errors.example.com/edit-conflict", "title": "Edit conflict", "status": 409,
        "detail": "Version conflict: document 42 was modified", "instance": "/documents/42",
        "request_id": "req-1", "current_version": 7, "current_etag": '"v7-doc"',
    }
    assert headers["ETag"] == '"v7-doc"'
    assert headers["Set-Cookie"] == "lock=1; Path=/"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Proxy-Status"] == "errorproxy; received-status=409"
    assert headers["X-Request-ID"] == "req-1"
    assert headers["Vary"] == "Accept"
    assert "Server" not in headers and "X-Powered-By" not in headers


@pytest.mark.parametrize(
    "accept, content_type, marker",
    [
        pytest.param(None, "application/problem+json", b'"status":409', id="no-accept"),
        pytest.param("*/*", "application/problem+json", b'"status":409', id="any"),
        pytest.param("application/json", "application/json", b'"status":409', id="json"),
        pytest.param("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html; charset=utf-8",
                     b"<p class=\"status\">Error 409</p>", id="browser"),
        pytest.param("text/plain", "text/plain; charset=utf-8", b"409 Conflict\n", id="text"),
        pytest.param("text/html;q=0.2, application/json;q=0.9", "application/json", b'"status":409', id="q-values"),
    ],
)
async def test_format_is_negotiated_on_accept(aiohttp_server, start_proxy, accept, content_type, marker):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/d": CONFLICT})
    status, headers, body = await _get(proxy, "/d", accept=accept)
    assert status == 409
    assert headers["Content-Type"] == content_type
    assert marker in body
    assert b"Version conflict: document 42 was modified" in body
    assert headers["Vary"] == "Accept"


async def test_fixed_format_does_not_vary(aiohttp_server, start_proxy):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/d": CONFLICT}, route="format: json")
    status, headers, body = await _get(proxy, "/d", accept="text/html")
    assert headers["Content-Type"] == "application/problem+json"
    assert headers.getall("Vary") == ["Accept-Language"]  # the format is fixed; the language is not


async def test_envelope_and_custom_styles(aiohttp_server, start_proxy):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/d": CONFLICT}, route="json_style: envelope")
    status, headers, body = await _get(proxy, "/d")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": {
        "code": 409, "message": "Conflict", "details": "Version conflict: document 42 was modified",
        "request_id": "req-1", "currentVersion": 7, "current_etag": '"v7-doc"'}}  # a 409's version, kept

    custom = await start_proxy(config_yaml(proxy_upstream(proxy), route="""
json_style: custom
json_template:
  ok: false
  code: "${status}"
  message: "${title}: ${detail}"
  trace: "${request_id}"
  etag: "${current_etag}"
  missing: "${nothing}"
"""))
    status, headers, body = await _get(custom, "/d")
    assert status == 409 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ok": False, "code": 409, "trace": "req-1", "etag": '"v7-doc"', "missing": None,
                                "message": "Conflict: Version conflict: document 42 was modified"}


def proxy_upstream(proxy) -> str:
    """The upstream URL a running proxy was configured with."""
    config = (proxy.log_path.parent / proxy.log_path.name.replace(".log", ".yaml")).read_text()
    return next(line.split("url:")[1].strip() for line in config.splitlines() if "url:" in line)


async def test_upstream_problem_keeps_its_members(aiohttp_server, start_proxy):
    upstream_problem = {"type": "https://api.example.com/probs/out-of-credit", "title": "You do not have enough credit.",
                        "status": 403, "detail": "Your balance is 30, but that costs 50.", "instance": "/internal/123",
                        "balance": 30, "accounts": ["/account/12345"]}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/buy": (403, {"Content-Type": "application/problem+json"},
                                                                   json.dumps(upstream_problem))})
    status, headers, body = await _get(proxy, "/buy", "POST")
    problem = json.loads(body)
    assert problem == {**upstream_problem, "instance": "/buy", "request_id": "req-1"}


@pytest.mark.parametrize(
    "content_type, body",
    [
        pytest.param("text/plain", PYTHON_TRACE, id="text-trace"),
        pytest.param("text/html", f"<html><body><h1>Server Error</h1><pre>{PYTHON_TRACE}</pre></body></html>", id="html-trace"),
        pytest.param("application/json", json.dumps({"message": "Internal error", "debug": {"trace": PYTHON_TRACE}}),
                     id="trace-in-json-field"),
        pytest.param("application/json", json.dumps({"message": PYTHON_TRACE}), id="trace-as-message"),
        pytest.param("text/plain", 'ERROR:  duplicate key value violates unique constraint "orders_pkey"', id="sql"),
    ],
)
async def test_stack_traces_never_reach_the_client(aiohttp_server, start_proxy, content_type, body):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/crash": (500, {"Content-Type": content_type}, body)})
    for accept in ("application/json", "text/html", "text/plain"):
        status, headers, reply = await _get(proxy, "/crash", accept=accept)
        assert status == 500
        for leak in (b"Traceback", b"views.py", b"/srv/legacy", b"OptimisticLockError", b"orders_pkey"):
            assert leak not in reply, (accept, reply)
    status, _, reply = await _get(proxy, "/crash")
    detail = json.loads(reply)["detail"]
    assert detail == "Internal error" if "Internal error" in body else detail.startswith("Something went wrong on our side")
    assert "req-1" in proxy.log() and "scrubbed" in proxy.log()


async def test_legacy_500_is_mapped_to_a_conflict(aiohttp_server, start_proxy):
    routes = {"/save": (500, {"Content-Type": "text/plain", "ETag": '"v9"'}, PYTHON_TRACE),
              "/other": (500, {"Content-Type": "text/plain"}, "Disk full")}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes, route="""
errors:
  - status: 500
    body_matches: "OptimisticLock|duplicate key"
    rewrite_status: 409
""")
    status, headers, body = await _get(proxy, "/save", "PUT", data=b"x")
    problem = json.loads(body)
    assert status == 409 and problem["status"] == 409 and problem["title"] == "Conflict"
    assert problem["detail"].startswith("The resource was changed by another request")
    assert problem["current_etag"] == '"v9"'
    assert headers["Proxy-Status"] == "errorproxy; received-status=500"
    status, _, body = await _get(proxy, "/other")
    assert status == 500 and json.loads(body)["detail"] == "Disk full"


async def test_rules_match_on_json_value_and_header(aiohttp_server, start_proxy):
    routes = {"/a": (400, {"Content-Type": "application/json"}, json.dumps({"code": "LOCKED", "msg": "Row is locked"})),
              "/b": (400, {"X-Error-Kind": "rate-limit", "Retry-After": "30"}, "slow down"),
              "/c": (400, {"Content-Type": "application/json"}, json.dumps({"code": "OTHER", "msg": "Bad field"}))}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes, route="""
errors:
  - status: 400
    json_equals: {/code: LOCKED}
    rewrite_status: 423
    detail_pointer: /msg
  - status: 4xx
    header_matches: {X-Error-Kind: "^rate-limit$"}
    rewrite_status: 429
    title: Slow down
""")
    status, _, body = await _get(proxy, "/a")
    assert status == 423 and json.loads(body)["detail"] == "Row is locked"
    status, headers, body = await _get(proxy, "/b")
    assert status == 429 and json.loads(body)["title"] == "Slow down" and headers["Retry-After"] == "30"
    status, _, body = await _get(proxy, "/c")
    assert status == 400 and json.loads(body)["detail"].startswith("The request could not be understood")


async def test_legacy_success_false_becomes_an_error(aiohttp_server, start_proxy):
    routes = {"/pay": (200, {"Content-Type": "application/json"}, json.dumps({"success": False, "message": "Card declined"})),
              "/ok": (200, {"Content-Type": "application/json"}, json.dumps({"success": True, "id": 5}))}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes, route="success_false: {status: 422, max_body: 4KiB}")
    status, headers, body = await _get(proxy, "/pay", "POST")
    assert status == 422 and json.loads(body)["detail"] == "Card declined"
    assert headers["Proxy-Status"] == "errorproxy; received-status=200"
    status, headers, body = await _get(proxy, "/ok", "POST")
    assert status == 200 and json.loads(body) == {"success": True, "id": 5}


async def test_not_intercepted_statuses_and_passthrough_routes_are_untouched(aiohttp_server, start_proxy):
    routes = {"/missing": (404, {"Content-Type": "text/plain", "Server": "legacy"}, "no such thing"),
              "/d": CONFLICT}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes, route="intercept: [409]")
    status, headers, body = await _get(proxy, "/missing")
    assert (status, body, headers["Server"]) == (404, b"no such thing", "legacy")
    passthrough = await start_proxy(config_yaml(proxy_upstream(proxy), route="format: passthrough"))
    status, headers, body = await _get(passthrough, "/d")
    assert status == 409 and body == CONFLICT[2].encode() and headers["X-Powered-By"] == "PHP/5.3"


async def test_concurrency_family_carries_the_current_etag(aiohttp_server, start_proxy):
    routes = {"/p": (412, {"ETag": '"v3"'}, b""), "/r": (428, {"ETag": '"v4"'}, b"")}
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes)
    status, headers, body = await _get(proxy, "/p", "PUT", data=b"x")
    problem = json.loads(body)
    assert status == 412 and problem["current_etag"] == '"v3"' and "If-Match" in problem["detail"]
    status, headers, body = await _get(proxy, "/r", "DELETE")
    problem = json.loads(body)
    assert status == 428 and problem["current_etag"] == '"v4"' and "If-Match" in problem["detail"]


async def test_head_gets_headers_without_body(aiohttp_server, start_proxy):
    proxy, _ = await _proxy(aiohttp_server, start_proxy, {"/d": CONFLICT})
    reply = await raw_exchange(proxy.port, b"HEAD /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 409 Conflict\r\n") and b"application/problem+json" in head
    assert body == b""


async def test_gzip_error_bodies_are_read_and_bombs_are_not(aiohttp_server, start_proxy):
    routes = {
        "/gz": (409, {"Content-Encoding": "gzip", "Content-Type": "application/json"},
                gzip.compress(json.dumps({"message": "Already reserved"}).encode())),
        "/br": (409, {"Content-Encoding": "br", "Content-Type": "application/json"},
                brotli.compress(json.dumps({"message": "Seat taken"}).encode())),
        "/brbomb": (409, {"Content-Encoding": "br", "Content-Type": "application/json"},
                    brotli.compress(b'{"message": "' + b"A" * (50 * 1024 * 1024) + b'"}')),
        "/bomb": (409, {"Content-Encoding": "gzip", "Content-Type": "application/json"},
                  gzip.compress(b'{"message": "' + b"A" * (50 * 1024 * 1024) + b'"}', compresslevel=9)),
    }
    proxy, _ = await _proxy(aiohttp_server, start_proxy, routes)
    status, headers, body = await _get(proxy, "/gz")
    assert json.loads(body)["detail"] == "Already reserved" and "Content-Encoding" not in headers
    status, headers, body = await _get(proxy, "/br")
    assert json.loads(body)["detail"] == "Seat taken"
    before = proxy.rss_kib()
    for bomb in ("/bomb", "/brbomb"):
        status, headers, body = await _get(proxy, bomb)
        assert status == 409 and json.loads(body)["detail"].startswith("The resource was changed")
    assert proxy.rss_kib() - before < 20 * 1024


async def test_upstream_connection_is_reused_after_an_intercepted_error_within_the_cap(aiohttp_server, start_proxy):
    peers = []

    async def handler(request):
        peers.append(request.transport)  # held, so each connection's object stays distinct
        size = int(request.query["size"])
        return web.Response(status=409, body=b"x" * size, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), route="max_error_body: 1KiB"))
    for _ in range(5):
        assert (await _get(proxy, "/?size=100"))[0] == 409
    assert len({id(t) for t in peers}) == 1  # read to the end: kept alive
    peers.clear()
    for _ in range(3):
        # Large enough that it is still in flight when the proxy decides (a body that
        # has arrived whole is complete on the wire, and its connection reusable).
        status, _, body = await _get(proxy, "/?size=10000000")
        assert status == 409 and json.loads(body)["detail"].startswith("The resource was changed")
    assert len({id(t) for t in peers}) == 3  # past the cap: never read, never reused


async def test_proxy_errors_take_the_route_shape(aiohttp_server, start_proxy, raw_server):
    config = """
listen: 127.0.0.1:0
defaults: {json_style: envelope}
upstreams: {down: "http://127.0.0.1:1"}
routes:
  - name: api
    match: {path_prefix: /api/}
    upstream: down
  - name: raw
    match: {path_prefix: /raw/}
    upstream: down
    origins: upstream
"""
    proxy = await start_proxy(config)
    status, headers, body = await _get(proxy, "/api/x", accept="text/html")
    assert status == 502 and headers["Content-Type"] == "text/html; charset=utf-8" and b"502 Bad Gateway" in body
    status, headers, body = await _get(proxy, "/api/x")
    assert json.loads(body)["error"]["code"] == 502
    status, headers, body = await _get(proxy, "/nowhere")
    assert status == 404 and json.loads(body)["error"]["message"] == "Not Found"
    status, headers, body = await _get(proxy, "/raw/x", accept="text/html")
    assert status == 502 and headers["Content-Type"] == "application/problem+json"
