"""An upstream's headers are hostile: a charset or a Retry-After no parser expects still gets the
client a rewritten error, never a 500 with a traceback."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.conftest import config_yaml, read_request_head


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


CONFLICT = b'{"error": {"message": "Version conflict: document 42 was modified"}}'
# JSON that json.loads takes and no JSON can be written with (1e400 sends the body past orjson).
ODD_JSON = {
    "/lone-surrogate": b'{"title": "Conflict", "detail": "Edited \\ud800 meanwhile", "editor": "\\udfff"}',
    "/integer-past-64-bits": b'{"title": "Conflict", "version": 123456789012345678901234567890, "limit": 1e400}',
}

# Path -> the upstream's raw status line and headers; the body is CONFLICT for JSON, a line of text otherwise.
UPSTREAM = {
    "/charset-undefined": b"409 Conflict\r\nContent-Type: application/json; charset=undefined",
    "/charset-idna": b"409 Conflict\r\nContent-Type: application/json; charset=idna",
    "/charset-punycode": b"409 Conflict\r\nContent-Type: application/json; charset=punycode",
    "/text-charset-idna": b"409 Conflict\r\nContent-Type: text/plain; charset=idna",
    "/lone-surrogate": b"409 Conflict\r\nContent-Type: application/problem+json",
    "/integer-past-64-bits": b"409 Conflict\r\nContent-Type: application/problem+json",
    "/retry-superscript": "429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: ²".encode(),
    "/retry-many-digits": b"429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: " + b"1" * 4301,
    "/retry-date-out-of-range": b"503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: Fri, 31 Dec 9999 23:59:59 -0100",
}


async def _upstream(reader, writer) -> None:
    while True:  # the proxy keeps connections open: one request after another
        head = await read_request_head(reader)
        path = head.split(b" ", 2)[1].decode()
        status_and_headers = UPSTREAM[path]
        body = ODD_JSON.get(path) or (CONFLICT if b"json" in status_and_headers else b"Slow down, please.\n")
        writer.write(b"HTTP/1.1 " + status_and_headers + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()


async def _get(proxy, path: str, accept: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + path, headers={"Accept": accept, "X-Request-ID": "req-1"}) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()


@pytest.mark.parametrize("path", ["/charset-undefined", "/charset-idna", "/charset-punycode"])
async def test_a_charset_that_is_none_still_gets_the_problem(raw_server, start_proxy, path):
    server = await raw_server(_upstream)
    proxy = await start_proxy(config_yaml(server.url))
    status, content_type, body = await _get(proxy, path, "*/*")
    assert (status, content_type) == (409, "application/problem+json")
    # Read as UTF-8, the body gave its message as the detail.
    assert json.loads(body)["detail"] == "Version conflict: document 42 was modified"
    assert "Traceback" not in proxy.log()


@pytest.mark.parametrize(
    "path, accept",
    [
        pytest.param("/lone-surrogate", "*/*", id="lone-surrogate-json"),
        pytest.param("/lone-surrogate", "text/html", id="lone-surrogate-page"),
        pytest.param("/integer-past-64-bits", "*/*", id="integer-past-64-bits-json"),
    ],
)
async def test_json_no_problem_can_be_written_with_is_not_read(raw_server, start_proxy, path, accept):
    server = await raw_server(_upstream)
    proxy = await start_proxy(config_yaml(server.url))
    status, content_type, body = await _get(proxy, path, accept)
    assert status == 409 and content_type.startswith("application/problem+json" if accept == "*/*" else "text/html")
    if accept == "*/*":
        assert json.loads(body)["detail"].startswith("The resource was changed by another request.")
    assert "Traceback" not in proxy.log()


async def test_a_text_body_with_a_charset_that_is_none_still_gets_the_page(raw_server, start_proxy):
    server = await raw_server(_upstream)
    proxy = await start_proxy(config_yaml(server.url))
    status, content_type, body = await _get(proxy, "/text-charset-idna", "text/html")
    assert (status, content_type) == (409, "text/html; charset=utf-8")
    assert b"<html" in body
    assert "Traceback" not in proxy.log()


@pytest.mark.parametrize(
    "path, status, words",
    [
        pytest.param("/retry-superscript", 429, b"Wait a minute, then try again.", id="superscript-digit"),
        pytest.param("/retry-many-digits", 429, b"Wait a minute, then try again.", id="4301-digits"),
        pytest.param("/retry-date-out-of-range", 503, b"Try again in a few minutes.", id="date-out-of-range"),
    ],
)
async def test_a_retry_after_that_is_none_still_gets_the_page(raw_server, start_proxy, path, status, words):
    server = await raw_server(_upstream)
    proxy = await start_proxy(config_yaml(server.url))
    got_status, content_type, body = await _get(proxy, path, "text/html,application/xhtml+xml,*/*;q=0.8")
    assert (got_status, content_type) == (status, "text/html; charset=utf-8")
    assert words in body
    assert "Traceback" not in proxy.log()
