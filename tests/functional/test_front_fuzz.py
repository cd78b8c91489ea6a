"""A bounded fuzz of the request front, under both request parsers, and what it found.

Generated raw requests (bench/fuzzgen.py: odd request lines, header sections and bodies,
pipelined, split, cut short, closed early) go to the proxy in front of an upstream that
never fails, so the proxy has no upstream fault to report: no answer may be a 5xx (505,
for a request line that is not HTTP/1.x, and 501, for a transfer coding other than
chunked, are meant), every answer must be whole HTTP/1.x
responses, every connection must end within seconds, the proxy's log must show no
exception nobody handled, and a plain GET must still get its 200 afterwards.

The cases are fixed by SEED; a failure prints each failing case's own seed, its bytes and
the answer, and `python bench/fuzz_front.py --case SEED` replays it. bench/fuzz_front.py
runs the same for as long as you like.

Below the fuzz, one test for each fault it found.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.fuzzrun import SERVER_LIMITS, Upstream, describe, exchange, log_problems, run, survives
from bench.fuzzgen import Case
from tests.conftest import config_yaml

# Its 300 cases hold a CONNECT with a body, so this fuzz alone failed under both parsers
# before the fixes below (as did seeds 4 and 5; seeds 1 to 3 happened to miss every fault).
SEED = 6
CASES = 300  # per parser: about 4 s (most connections close as soon as they are answered)
WALL_CLOCK = 20.0  # seconds at most, whatever the machine's load
MIN_CASES = 100  # a run the wall clock cut shorter than this proves too little


@pytest.fixture
async def upstream():
    with Upstream() as server:
        await server.start()
        yield server
        await server.stop()


async def test_generated_requests_get_no_5xx_and_leave_no_traceback(upstream, start_proxy, http_parser):
    proxy = await start_proxy(config_yaml(upstream.url, top=SERVER_LIMITS))
    report = await run(proxy.port, SEED, count=CASES, seconds=WALL_CLOCK, concurrency=16, cap=8.0)
    print(report.summary())
    assert not report.failed, "\n".join([f"{http_parser}, {report.summary()}", *map(describe, report.failed[:5])])
    assert report.cases >= MIN_CASES, report.summary()
    assert upstream.failures == []  # nothing the proxy sent was a request the upstream could not parse
    after = await survives(proxy.port)
    assert after.startswith(b"HTTP/1.1 200 "), after[:300]
    assert log_problems(proxy.log()) == []


# --- What the fuzz found --------------------------------------------------------------------------

def _status_and_body(answer: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {name.decode().lower(): value.decode().strip() for name, _, value in (line.partition(b":") for line in lines)}
    return status_line, headers, body


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"CONNECT public.example:443 HTTP/1.1\r\nHost: public.example:443\r\n\r\n", id="authority-form"),
    # The body went upstream as the start of a next request, and the 200 came back unframed:
    # the client waited on it until the upstream closed.
    pytest.param(b"CONNECT /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                 id="origin-form-with-body"),
    pytest.param(b"CONNECT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", id="chunked-then-pipelined"),
])
async def test_connect_is_refused_with_405_and_the_connection_closed(upstream, start_proxy, request_bytes):
    proxy = await start_proxy(config_yaml(upstream.url, top=SERVER_LIMITS))
    answer, closed = await exchange(proxy.port, Case(0, (request_bytes,)), cap=3.0)
    status_line, headers, body = _status_and_body(answer)
    assert closed, answer  # a tunnel it did not open: nothing keeps the connection
    assert status_line.split(b" ", 1)[1] == b"405 Method Not Allowed", answer
    assert "CONNECT" not in headers["allow"] and "GET" in headers["allow"]
    assert json.loads(body)["status"] == 405
    assert b"HTTP/1." not in body  # one answer: nothing behind the CONNECT was served
    assert upstream.requests == 0 and upstream.failures == []


@pytest.mark.parametrize("target", [
    pytest.param(b"/a\xd0b?x=1", id="not-utf8"),  # under the Python parser: a surrogate in the path, a 500 rendering it
    pytest.param(b"/\xc3\xa9t\xc3\xa9", id="raw-utf8"),  # forwarded raw under the Python parser
    pytest.param(b"/a?q=\x7f", id="del"),
])
async def test_a_target_past_ascii_is_the_clients_400_under_both_parsers(upstream, start_proxy, target):
    proxy = await start_proxy(config_yaml(upstream.url, top=SERVER_LIMITS))
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer, closed = await exchange(proxy.port, Case(0, (request,)), cap=3.0)
    status_line, headers, body = _status_and_body(answer)
    assert closed and status_line.split(b" ")[1] == b"400", answer
    assert headers["content-type"] == "application/problem+json" and "proxy-status" not in headers
    assert upstream.requests == 0 and upstream.failures == []
    await asyncio.sleep(0.1)  # the access log line is written after the answer
    assert log_problems(proxy.log()) == []


@pytest.mark.parametrize("framing", [
    # Forwarded without its body but with its Content-Length: an upstream that reads the
    # body first (as h11 does) never answered, and the client waited for good.
    pytest.param(b"Content-Length: 5\r\n\r\nhello", id="content-length"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", id="chunked"),
])
async def test_a_websocket_handshake_with_a_body_is_the_clients_400(upstream, start_proxy, framing):
    proxy = await start_proxy(config_yaml(upstream.url, top=SERVER_LIMITS))
    request = (b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + framing)
    answer, closed = await exchange(proxy.port, Case(0, (request,)), cap=3.0)
    status_line, headers, body = _status_and_body(answer)
    assert closed and status_line.split(b" ")[1] == b"400", answer
    assert json.loads(body)["detail"] == "A WebSocket handshake has no body."
    assert upstream.requests == 0 and upstream.failures == []
