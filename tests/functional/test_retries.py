"""Retries past connect failures (`retry_on`), the retry budget, and the breaker (`max_requests`,
`max_pending`), through the proxy process against real 127.0.0.1 upstreams.

What each target got, and on which connection, is counted on the target's
side; what the proxy decided is read from its /metrics and its log.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest
from aiohttp import web

from tests.functional.test_observability import admin_url, labels, scrape, series
from tests.functional.test_resilience import _config


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


class Answering:
    """An upstream answering every request with `status` and a body naming itself; it records each
    request and the connection (the client's port) it came on."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name = name
        self.status = status
        self.got: list[tuple[str, str]] = []  # method, path
        self.connections: set[object] = set()
        self.release: asyncio.Event | None = None  # when set: every answer waits for it

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            self.got.append((request.method, request.path))
            self.connections.add(request.transport.get_extra_info("peername"))
            if self.release is not None:
                await self.release.wait()
            return web.Response(status=self.status, text=f"{self.name} says {self.status} " + "x" * 2000)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


async def _start(aiohttp_server, name: str, status: int = 200) -> tuple[Answering, str]:
    upstream = Answering(name, status)
    server = await aiohttp_server(upstream.app())
    return upstream, f"http://127.0.0.1:{server.port}"


PASS_5XX = "intercept: [409]"  # the upstream's own answers reach the client as they are


async def _send(client: aiohttp.ClientSession, url: str, method: str = "GET", **kwargs) -> tuple[int, str]:
    async with client.request(method, url, **kwargs) as response:
        return response.status, (await response.text())[:12]


async def test_503_is_retried_on_another_target_for_get_not_post(aiohttp_server, start_proxy):
    """GET: a's 503 is dropped (its body read, its connection kept) and b answers. POST: a's 503 is the answer."""
    a, a_url = await _start(aiohttp_server, "a", 503)
    b, b_url = await _start(aiohttp_server, "b", 200)
    proxy = await start_proxy(_config(a_url, b_url, upstream="retry_on: [connect, 503]") + f"    {PASS_5XX}\n")
    async with aiohttp.ClientSession() as client:
        assert await _send(client, f"{proxy.url}/doc") == (200, "b says 200 x")
        assert await _send(client, f"{proxy.url}/doc", "POST", data=b'{"n": 1}') == (503, "a says 503 x")
        assert await _send(client, f"{proxy.url}/doc") == (200, "b says 200 x")  # b's turn
        # DELETE without a body is idempotent: retried like the GET.
        assert await _send(client, f"{proxy.url}/doc", "DELETE") == (200, "b says 200 x")
        samples = await scrape(client, await admin_url(proxy))
    assert a.got == [("GET", "/doc"), ("POST", "/doc"), ("DELETE", "/doc")]
    assert b.got == [("GET", "/doc"), ("GET", "/doc"), ("DELETE", "/doc")]
    assert len(a.connections) == 1, "the retried 503's connection was read to its end and reused"
    assert series(samples, "errorproxy_upstream_retries_total") == {labels(upstream="app", reason="503"): 2.0}
    retried = [line for line in proxy.log().splitlines() if "answered 503, retrying in" in line]
    assert len(retried) == 2 and all("request_id=" in line for line in retried)


async def test_retries_run_out_the_client_gets_the_last_answer(aiohttp_server, start_proxy):
    a, a_url = await _start(aiohttp_server, "a", 503)
    b, b_url = await _start(aiohttp_server, "b", 502)
    config = _config(a_url, b_url, upstream="retry_on: [502, 503]\nretries: 1\neject_after: 0") + f"    {PASS_5XX}\n"
    proxy = await start_proxy(config)
    async with aiohttp.ClientSession() as client:
        assert await _send(client, f"{proxy.url}/x") == (502, "b says 502 x")
        # A status retry_on does not name is the answer at once.
        a.status = 504
        assert await _send(client, f"{proxy.url}/x") == (504, "a says 504 x")
    assert len(a.got) == 2 and len(b.got) == 1


async def test_reset_is_retried_for_idempotent_requests_only(aiohttp_server, raw_server, start_proxy):
    """A target that takes the request and hangs up: with `reset` in retry_on, a GET goes on to b."""
    heads: list[bytes] = []

    async def hang_up(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    dropping = await raw_server(hang_up)
    b, b_url = await _start(aiohttp_server, "b")
    proxy = await start_proxy(_config(dropping.url, b_url, upstream="retry_on: [connect, reset]"))
    async with aiohttp.ClientSession() as client:
        assert await _send(client, f"{proxy.url}/r") == (200, "b says 200 x")
        async with client.post(f"{proxy.url}/r", data=b"{}") as response:
            assert response.status == 502
            assert response.headers["Proxy-Status"] == "errorproxy; error=http_response_incomplete"
        samples = await scrape(client, await admin_url(proxy))
    assert [head.split(b" ")[0] for head in heads] == [b"GET", b"POST"]
    assert b.got == [("GET", "/r")]
    assert series(samples, "errorproxy_upstream_retries_total") == {labels(upstream="app", reason="reset"): 1.0}


async def test_spent_budget_stops_retries(aiohttp_server, start_proxy):
    """Both targets answer 503: with no share of the requests to spend, only the 3 minimum retries are made."""
    a, a_url = await _start(aiohttp_server, "a", 503)
    b, b_url = await _start(aiohttp_server, "b", 503)
    budget = "retry_on: [503]\nretries: 1\nretry_budget: 0%\nretry_budget_min: 3\neject_after: 0"
    proxy = await start_proxy(_config(a_url, b_url, upstream=budget))
    async with aiohttp.ClientSession() as client:
        statuses = [(await _send(client, f"{proxy.url}/n{i}"))[0] for i in range(10)]
        samples = await scrape(client, await admin_url(proxy))
    assert statuses == [503] * 10
    assert len(a.got) + len(b.got) == 10 + 3  # without a budget: 20
    assert series(samples, "errorproxy_upstream_retries_total") == {labels(upstream="app", reason="503"): 3.0}
    assert series(samples, "errorproxy_upstream_retry_overflow_total") == {labels(upstream="app"): 7.0}
    assert len(re.findall(r"retry budget spent .* request_id=", proxy.log())) == 7


@pytest.mark.parametrize("caps, awaiting", [
    pytest.param("max_connections: 1\nmax_pending: 1", 2, id="max_pending"),
    pytest.param("max_requests: 1", 1, id="max_requests"),
])
async def test_breaker_answers_503_at_once(aiohttp_server, start_proxy, caps, awaiting):
    """While `awaiting` requests wait on a stalled upstream, the next one gets 503 with Retry-After at once."""
    slow, slow_url = await _start(aiohttp_server, "slow")
    slow.release = asyncio.Event()
    proxy = await start_proxy(_config(slow_url, upstream=caps))
    async with aiohttp.ClientSession() as client:
        held = [asyncio.ensure_future(_send(client, f"{proxy.url}/held{i}")) for i in range(awaiting)]
        deadline = time.monotonic() + 5
        while len(slow.got) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the others, if any, are queued in the proxy by now
        started = time.monotonic()
        async with client.get(f"{proxy.url}/one-too-many", headers={"Accept": "application/json"}) as response:
            elapsed = time.monotonic() - started
            body = await response.json(content_type=None)
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert response.headers["Proxy-Status"] == "errorproxy; error=connection_limit_reached"
        assert elapsed < 1.0
        assert body["status"] == 503 and body["title"] == "Service Unavailable"
        slow.release.set()
        assert [status for status, _ in await asyncio.wait_for(asyncio.gather(*held), 10)] == [200] * awaiting
        samples = await scrape(client, await admin_url(proxy))
    assert ("GET", "/one-too-many") not in slow.got
    assert series(samples, "errorproxy_upstream_errors_total")[
        labels(upstream="app", kind="connection_limit_reached")] == 1.0
    assert re.search(r"upstream app: max_\w+ \(1\) reached, \d request\(s\) awaiting it: 503 request_id=", proxy.log())
