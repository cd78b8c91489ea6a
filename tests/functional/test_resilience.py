"""Several targets per upstream: round robin, ejection and probing, bounded retries.

Every target is a real server on 127.0.0.1, or a port nothing listens on (it
refuses). What a target got is counted on the target's side; what the proxy
tried and could not reach is read from its log, one line a try.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import read_request_head
from tests.functional.test_faults import Tally, blackhole_url  # noqa: F401 (a fixture)


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


def _config(*targets: str, upstream: str = "") -> str:
    listed = "\n".join(f"      - {target}" for target in targets)
    extra = "\n".join(f"    {line.strip()}" for line in upstream.strip().splitlines())
    return f"""
listen: 127.0.0.1:0
upstreams:
  app:
    targets:
{listed}
{extra}
routes:
  - name: all
    match: {{path_prefix: /}}
    upstream: app
"""


def _closed_ports(count: int) -> list[int]:
    """Distinct ports on 127.0.0.1 that refuse connections: bound, never listened on, closed."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _closed_port() -> int:
    return _closed_ports(1)[0]


class Named:
    """An upstream that answers 200 with its name and records each request it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[tuple[str, str, str, bytes]] = []  # method, path, Host, body

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.Response:
            body = await request.read()
            self.got.append((request.method, request.path_qs, request.headers.get("Host", ""), body))
            return web.Response(text=self.name)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


async def _serve(aiohttp_server, name: str, port: int | None = None) -> tuple[Named, str]:
    named = Named(name)
    server = await aiohttp_server(named.app(), port=port) if port else await aiohttp_server(named.app())
    return named, f"http://127.0.0.1:{server.port}"


def _unreachable(log: str) -> list[str]:
    """The proxy's log lines for tries whose target could not be reached."""
    return [line for line in log.splitlines() if " unreachable (" in line]


async def _get(client: aiohttp.ClientSession, url: str, method: str = "GET", **kwargs) -> tuple[int, str]:
    async with client.request(method, url, **kwargs) as response:
        return response.status, await response.text()


async def test_round_robin_over_three_targets(aiohttp_server, start_proxy):
    """Each target in turn; each gets its own base path and, as Host, its own authority."""
    servers = [await _serve(aiohttp_server, name) for name in ("a", "b", "c")]
    bases = ("/one", "", "/three/")
    proxy = await start_proxy(_config(*(url + base for (_, url), base in zip(servers, bases))))
    async with aiohttp.ClientSession() as client:
        answers = [await _get(client, f"{proxy.url}/items?id={i}") for i in range(12)]
    assert [body for _, body in answers] == ["a", "b", "c"] * 4
    assert {status for status, _ in answers} == {200}
    for turn, ((named, url), base) in enumerate(zip(servers, bases)):
        assert named.got == [
            ("GET", f"{base.rstrip('/')}/items?id={i}", url.removeprefix("http://"), b"") for i in range(turn, 12, 3)
        ]
    assert _unreachable(proxy.log()) == []


async def test_refusing_target_is_ejected_then_probed_back(aiohttp_server, start_proxy):
    """After one refusal a target is left alone for `eject_for`, then one request probes it."""
    eject_for = 1.5
    (a, a_url), (b, b_url) = [await _serve(aiohttp_server, name) for name in ("a", "b")]
    port = _closed_port()
    proxy = await start_proxy(_config(a_url, b_url, f"http://127.0.0.1:{port}", upstream=f"eject_for: {eject_for}s"))
    async with aiohttp.ClientSession() as client:
        first = [await _get(client, f"{proxy.url}/") for _ in range(3)]
        ejected_at = time.monotonic()
        # The GET that met the refusal was retried on a, so nobody saw an error.
        assert first == [(200, "a"), (200, "b"), (200, "a")]
        assert len(_unreachable(proxy.log())) == 1

        # The port listens again, yet the cool-down holds: nothing goes there.
        c, _ = await _serve(aiohttp_server, "c", port=port)
        during = [await _get(client, f"{proxy.url}/") for _ in range(10)]
        assert time.monotonic() - ejected_at < eject_for, "too slow to test within the cool-down"
        assert Counter(during) == {(200, "a"): 5, (200, "b"): 5}
        assert c.got == []
        assert len(_unreachable(proxy.log())) == 1

        await asyncio.sleep(ejected_at + eject_for + 0.05 - time.monotonic())
        after = [await _get(client, f"{proxy.url}/") for _ in range(6)]
    # The probe reached c, which is back in the rotation.
    assert {status for status, _ in after} == {200}
    assert Counter(body for _, body in after) == {"a": 2, "b": 2, "c": 2}
    assert len(c.got) == 2
    assert len(_unreachable(proxy.log())) == 1


@pytest.mark.parametrize("method, body", [
    pytest.param("GET", b"", id="GET"),
    pytest.param("POST", b"x" * 200_000, id="POST-nothing-was-sent"),
    pytest.param("PATCH", b"{}", id="PATCH-nothing-was-sent"),
])
async def test_request_whose_target_refuses_is_retried_on_another(aiohttp_server, start_proxy, method, body):
    """A refused connection sent nothing, so any method is tried on the next target."""
    a, a_url = await _serve(aiohttp_server, "a")
    refusing = f"http://127.0.0.1:{_closed_port()}"
    proxy = await start_proxy(_config(refusing, a_url))
    async with aiohttp.ClientSession() as client:
        assert await _get(client, f"{proxy.url}/x", method, data=body or None) == (200, "a")
    assert [(m, p, b) for m, p, _, b in a.got] == [(method, "/x", body)]
    failures = _unreachable(proxy.log())
    assert len(failures) == 1 and refusing in failures[0] and "trying another in 0.05s" in failures[0]
    assert "upstream app failed" not in proxy.log()


async def test_websocket_upgrade_goes_to_a_target_the_balancer_picks(aiohttp_server, start_proxy):
    """The upgrade is a GET like any other: a refusing target is skipped, Host names the one used."""
    hosts: list[str] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        hosts.append(request.headers["Host"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    server = await aiohttp_server(app)
    refusing = f"http://127.0.0.1:{_closed_port()}"
    proxy = await start_proxy(_config(refusing, f"http://127.0.0.1:{server.port}"))
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
    assert hosts == [f"127.0.0.1:{server.port}"]
    assert len(_unreachable(proxy.log())) == 1


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_request_that_reached_a_target_is_not_tried_on_another(aiohttp_server, raw_server, start_proxy, method):
    """The upstream took the request and hung up: 502, and the next target never sees it."""
    tally = Tally()

    async def hang_up(reader, writer):
        tally.heads.append(await read_request_head(reader))

    server = await raw_server(tally.counting(hang_up))
    a, a_url = await _serve(aiohttp_server, "a")
    proxy = await start_proxy(_config(server.url, a_url))
    body = b'{"n": 1}' if method == "POST" else None
    async with aiohttp.ClientSession() as client:
        async with client.request(method, f"{proxy.url}/orders", data=body) as response:
            assert response.status == 502
            assert response.headers["Proxy-Status"] == "errorproxy; error=http_response_incomplete"
    assert tally.accepted == 1  # a new connection that took the request and hung up: not sent again
    assert all(head.startswith(method.encode() + b" /orders ") for head in tally.heads)
    assert a.got == []
    assert _unreachable(proxy.log()) == []


async def test_retries_are_bounded_and_back_off(aiohttp_server, start_proxy):
    """Four refusing targets, retries: 2: three tries (targets 0, 1, 2), then 502."""
    ports = _closed_ports(4)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    proxy = await start_proxy(_config(*urls, upstream="retries: 2\nretry_backoff: 100ms\neject_for: 30s"))
    async with aiohttp.ClientSession() as client:
        started = time.monotonic()
        async with client.get(f"{proxy.url}/") as response:
            elapsed = time.monotonic() - started
            assert response.status == 502
            assert response.headers["Proxy-Status"] == "errorproxy; error=connection_refused"
        failures = _unreachable(proxy.log())
        assert [next(url for url in urls if url in line) for line in failures] == urls[:3]
        assert ["trying another in" in line for line in failures] == [True, True, False]
        assert elapsed >= 0.1 + 0.2

        # Seen from the targets' side: all four listen now, and only the untried
        # one gets requests; the three tried ones sit out their ejection.
        targets = [(await _serve(aiohttp_server, str(i), port=port))[0] for i, port in enumerate(ports)]
        assert [await _get(client, f"{proxy.url}/") for _ in range(3)] == [(200, "3")] * 3
    assert [len(target.got) for target in targets] == [0, 0, 0, 3]


async def test_single_target_that_comes_back_is_used_at_once(aiohttp_server, start_proxy):
    """Every target ejected: the proxy still tries one, so a restarted upstream is found at once."""
    port = _closed_port()
    proxy = await start_proxy(_config(f"http://127.0.0.1:{port}", upstream="eject_for: 30s"))
    async with aiohttp.ClientSession() as client:
        assert (await _get(client, f"{proxy.url}/"))[0] == 502
        a, _ = await _serve(aiohttp_server, "a", port=port)
        assert await _get(client, f"{proxy.url}/") == (200, "a")
    assert len(a.got) == 1
    assert len(_unreachable(proxy.log())) == 1  # one target, so nothing to retry on


async def test_connect_timeout_ejects_the_target(aiohttp_server, start_proxy, blackhole_url):  # noqa: F811
    """A target whose connects hang costs one connect timeout, then is left alone."""
    a, a_url = await _serve(aiohttp_server, "a")
    proxy = await start_proxy(_config(blackhole_url, a_url, upstream="connect_timeout: 300ms\neject_for: 30s"))
    async with aiohttp.ClientSession() as client:
        started = time.monotonic()
        assert await _get(client, f"{proxy.url}/") == (200, "a")
        assert time.monotonic() - started >= 0.3
        assert [await _get(client, f"{proxy.url}/") for _ in range(4)] == [(200, "a")] * 4
    assert len(a.got) == 5
    failures = _unreachable(proxy.log())
    assert len(failures) == 1 and "ConnectTimeout" in failures[0]


async def test_waiting_for_a_full_pool_is_not_the_targets_fault(raw_server, aiohttp_server, start_proxy):
    """max_connections is held by a slow stream: the next request's wait times out with 504,
    without a retry and without ejecting the target it was meant for."""
    tally = Tally()
    release = asyncio.Event()

    async def trickle(reader, writer):
        tally.heads.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100):  # a byte well within each read_timeout, until released
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            if release.is_set():
                break
            await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    slow = await raw_server(tally.counting(trickle))
    a, a_url = await _serve(aiohttp_server, "a")
    # The wait for a pooled connection is bounded by connect_timeout + read_timeout.
    limits = "max_connections: 1\nconnect_timeout: 200ms\nread_timeout: 1s\nretries: 2"
    proxy = await start_proxy(_config(slow.url, a_url, upstream=limits))
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{proxy.url}/slow") as streaming:
            assert streaming.status == 200
            status, _ = await asyncio.wait_for(_get(client, f"{proxy.url}/next"), 10)
            release.set()
            assert set((await streaming.read()).decode()) == {"x"}
        assert status == 504
        # Round robin goes on: slow, then a, which was not ejected.
        assert Counter([await _get(client, f"{proxy.url}/again") for _ in range(2)]) == {(200, "a"): 1, (200, "x"): 1}
    assert [path for _, path, _, _ in a.got] == ["/again"]
    assert _unreachable(proxy.log()) == []
    assert len(re.findall(r"upstream app failed: connection_timeout", proxy.log())) == 1
