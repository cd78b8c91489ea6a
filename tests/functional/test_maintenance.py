"""Maintenance mode through the running proxy: switched on and off by the admin listener, a file, the config.

The proxy runs as a subprocess in front of an aiohttp upstream that counts the
requests it gets; a request answered by maintenance must never reach it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.http.i18n import Catalog
from tests.conftest import RunningProxy

MESSAGE = "Upgrading the database, back by 14:00."


# What this module tests lies past the request parser: it runs once, on aiohttp's C parser.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


@pytest.fixture
async def upstream(aiohttp_server):
    received: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.Response(text="from the upstream")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    server = await aiohttp_server(app)
    server.received = received
    return server


def config(upstream_url: str, defaults: str = "", api: str = "", top: str = "") -> str:
    """Two routes, `api` (/api) and `site` (/), on one upstream."""
    return f"""
listen: 127.0.0.1:0
{top}
upstreams:
  app: {upstream_url}
defaults:
  {defaults}
routes:
  - name: api
    match: {{path_prefix: /api}}
    upstream: app
    {api}
  - name: site
    match: {{path_prefix: /}}
    upstream: app
"""


async def admin_url(proxy: RunningProxy) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = re.search(r"admin listening on (http://\S+?)[ ,\n]", proxy.log())
        if match:
            return match.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no admin listener:\n{proxy.log()}")


async def status_of(session: aiohttp.ClientSession, url: str, **headers: str) -> int:
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def eventually(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_switched_on_and_off_on_the_admin_listener(start_proxy, upstream):
    proxy = await start_proxy(config(str(upstream.make_url("")), "maintenance: {retry_after: 5m}"))
    admin = await admin_url(proxy)
    async with aiohttp.ClientSession() as session:
        async with session.get(admin + "/readyz") as response:
            assert (response.status, await response.text()) == (200, "ready\n")
        async with session.post(admin + "/maintenance?retry_after=10m", json={"message": MESSAGE}) as response:
            assert response.status == 200
            state = (await response.json())["maintenance"]
        assert state["on"] is True
        assert state["routes"]["api"] == {"source": "admin", "retry_after": 600, "message": MESSAGE}

        seen = len(upstream.received)
        async with session.get(proxy.url + "/api/orders") as response:  # Accept: */*
            assert response.status == 503
            assert response.headers["Retry-After"] == "600"
            assert response.headers["Proxy-Status"] == 'errorproxy; error=destination_unavailable; details="maintenance"'
            assert response.content_type == "application/problem+json"
            problem = await response.json()
        assert problem["status"] == 503 and problem["title"] == "Service Unavailable"
        assert problem["detail"] == MESSAGE
        async with session.get(proxy.url + "/", headers={"Accept": "text/html", "Accept-Language": "de"}) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "600"
            assert response.content_type == "text/html"
            page = await response.text()
        headline = Catalog("de").pgettext("maintenance.headline", "Down for maintenance")
        assert '<html lang="de">' in page and MESSAGE in page
        assert f"<h1>{headline}</h1>" in page and headline != "Down for maintenance", "the maintenance page, in German"
        assert "10 Minuten" in page, "Retry-After in words, in the page's language"
        assert len(upstream.received) == seen, "nothing reached the upstream"

        async with session.get(admin + "/readyz") as response:
            assert response.status == 200, "maintenance is not unready"
            assert await response.text() == "ready\nmaintenance: on (api: admin; site: admin)\n"
        async with session.get(admin + "/readyz", headers={"Accept": "application/json"}) as response:
            body = await response.json()
        assert body["status"] == "ready" and body["maintenance"]["on"] is True

        async with session.delete(admin + "/maintenance") as response:
            assert response.status == 200
            assert (await response.json())["maintenance"] == {"on": False, "routes": {}, "switches": {}}
        assert await status_of(session, proxy.url + "/api/orders") == 200
        async with session.get(admin + "/readyz") as response:
            assert await response.text() == "ready\n"


async def test_one_route_switched_on_the_others_forwarded(start_proxy, upstream):
    proxy = await start_proxy(config(str(upstream.make_url(""))))
    admin = await admin_url(proxy)
    async with aiohttp.ClientSession() as session:
        async with session.post(admin + "/maintenance?route=api&message=API+upgrade") as response:
            assert response.status == 200
        async with session.get(proxy.url + "/api/x", headers={"Accept": "application/json"}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "300", "the route's default retry_after"
            assert (await response.json())["detail"] == "API upgrade"
        assert await status_of(session, proxy.url + "/page") == 200
        async with session.delete(admin + "/maintenance") as response:
            assert (await response.json())["maintenance"]["on"] is True, "the global switch was not the one on"
        async with session.delete(admin + "/maintenance?route=api") as response:
            assert (await response.json())["maintenance"]["on"] is False
        assert await status_of(session, proxy.url + "/api/x") == 200


REFUSALS = [  # (what is asked, status, why), each on one proxy: starting one per case costs seconds
    ({"params": {"route": "nope"}}, 404, 'no route is named "nope" (routes: api, site)'),
    ({"params": {"retry_after": "soon"}}, 400, 'retry_after: "soon" is not a duration'),
    ({"json": {"message": ""}}, 400, "message must be a non-empty string of at most 1000 characters"),
    ({"json": {"message": "\udcff"}}, 400, "message must be a non-empty string of at most 1000 characters"),
    ({"json": ["on"]}, 400, 'the body must be a JSON object: {"retry_after": "10m", "message": "..."}'),
    ({"json": {"switch": "on"}}, 400,
     "unknown parameter switch (known: retry_after, message; route as a query parameter)"),
    ({"data": "retry_after=1m"}, 415, "the body must be JSON (Content-Type: application/json), or use query parameters"),
    ({"headers": {"Origin": "https://evil.example"}}, 403,
     "a request from a web page (it has an Origin header) cannot switch maintenance"),
]


async def test_a_switch_that_cannot_be_done_says_why_and_changes_nothing(start_proxy, upstream):
    proxy = await start_proxy(config(str(upstream.make_url(""))))
    admin = await admin_url(proxy)
    async with aiohttp.ClientSession() as session:
        for ask, status, error in REFUSALS:
            async with session.post(admin + "/maintenance", **ask) as response:
                assert (response.status, await response.json()) == (status, {"error": error}), ask
        async with session.get(admin + "/maintenance") as response:
            assert (await response.json())["maintenance"]["on"] is False
        assert await status_of(session, proxy.url + "/api/x") == 200


async def test_allowed_clients_pass_through(start_proxy, upstream):
    # The test client is 127.0.0.1, a trusted proxy here: X-Forwarded-For says who the client is.
    proxy = await start_proxy(config(
        str(upstream.make_url("")), "maintenance: {enabled: true, allow: [192.0.2.0/24, 127.0.0.2/32]}",
        top="trusted_proxies: [127.0.0.1/32]"))
    async with aiohttp.ClientSession() as session:
        assert await status_of(session, proxy.url + "/api/x") == 503, "127.0.0.1 itself is not allowed"
        assert await status_of(session, proxy.url + "/api/x", **{"X-Forwarded-For": "192.0.2.44"}) == 200
        assert await status_of(session, proxy.url + "/api/x", **{"X-Forwarded-For": "198.51.100.9"}) == 503
        # Written by the client itself, before an untrusted hop: the nearest untrusted address counts.
        assert await status_of(session, proxy.url + "/api/x",
                               **{"X-Forwarded-For": "192.0.2.44, 198.51.100.9"}) == 503
    # A client whose own address is allowed, connecting from it.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as session:
        assert await status_of(session, proxy.url + "/api/x") == 200


async def test_a_file_switches_it_on_and_off_within_a_second(start_proxy, upstream, tmp_path):
    flag = tmp_path / "maintenance"
    proxy = await start_proxy(config(str(upstream.make_url("")), f"maintenance: {{file: {flag}}}"))
    admin = await admin_url(proxy)
    async with aiohttp.ClientSession() as session:
        assert await status_of(session, proxy.url + "/api/x") == 200
        flag.touch()
        started = time.monotonic()
        await eventually(lambda: _is(session, proxy.url + "/api/x", 503), "maintenance by file", timeout=3)
        assert time.monotonic() - started < 2.0
        async with session.get(admin + "/readyz") as response:
            assert await response.text() == "ready\nmaintenance: on (api: file; site: file)\n"
        flag.unlink()
        await eventually(lambda: _is(session, proxy.url + "/api/x", 200), "back from maintenance", timeout=3)


async def test_config_per_route_by_reload_and_an_admin_switch_survives_reloads(start_proxy, upstream):
    proxy = await start_proxy(config(str(upstream.make_url("")), api="maintenance: {enabled: true}"))
    admin = await admin_url(proxy)
    async with aiohttp.ClientSession() as session:
        assert await status_of(session, proxy.url + "/api/x") == 503
        assert await status_of(session, proxy.url + "/page") == 200, "only the route whose config says so"

        proxy.config_path.write_text(config(str(upstream.make_url(""))))
        proxy.process.send_signal(signal.SIGHUP)
        await eventually(lambda: _is(session, proxy.url + "/api/x", 200), "the reload that switches it off")

        async with session.post(admin + "/maintenance") as response:
            assert response.status == 200
        assert await status_of(session, proxy.url + "/page") == 503
        proxy.config_path.write_text(config(str(upstream.make_url("")), "maintenance: {retry_after: 1m}"))
        proxy.process.send_signal(signal.SIGHUP)
        await eventually(lambda: _logged(proxy, "reloaded ", 2), "the second reload")
        async with session.get(proxy.url + "/page", headers={"Accept": "application/json"}) as response:
            assert response.status == 503, "a switch thrown on the admin listener outlives a reload"
            assert response.headers["Retry-After"] == "60", "with the new config's retry_after"
        async with session.delete(admin + "/maintenance") as response:
            assert response.status == 200
        assert await status_of(session, proxy.url + "/page") == 200


async def _is(session: aiohttp.ClientSession, url: str, status: int) -> bool:
    return await status_of(session, url) == status


async def _logged(proxy: RunningProxy, text: str, count: int) -> bool:
    return proxy.log().count(text) == count


def _worker_serving(client_port: int, pids: list[int]) -> int | None:
    """The worker whose socket is connected to the client's `client_port` (read from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == client_port:  # remote port: the client's
                inodes.add(fields[9])
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    return None


async def _ask(port: int, pids: list[int]) -> tuple[int, int | None]:
    """GET / on a new connection: the status, and which worker answered it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        worker = _worker_serving(writer.get_extra_info("sockname")[1], pids)  # still open: found
        return int(head.split(b" ", 2)[1]), worker
    finally:
        writer.close()


@pytest.mark.slow
async def test_every_worker_agrees_whichever_one_took_the_switch(start_proxy, upstream):
    proxy = await start_proxy(config(str(upstream.make_url(""))), args=("--workers", "2"))
    deadline = time.monotonic() + 30
    while not (match := re.search(r"\(2 workers, pids (\d+) (\d+),", proxy.log())):
        assert time.monotonic() < deadline and proxy.process.poll() is None, proxy.log()
        await asyncio.sleep(0.05)
    pids = [int(match.group(1)), int(match.group(2))]
    admin = await admin_url(proxy)

    async def answers(expected: int) -> set[int]:
        """Ask on new connections until both workers have answered; every answer must be `expected`."""
        served: set[int] = set()
        for _ in range(60):
            status, worker = await _ask(proxy.port, pids)
            assert status == expected, f"worker {worker} answered {status}"
            if worker is not None:
                served.add(worker)
            if served == set(pids):
                break
        return served

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.post(admin + "/maintenance", json={"retry_after": 30}) as response:
            assert response.status == 200
        await asyncio.sleep(1.2)  # each worker looks at the shared switches once a second
        assert await answers(503) == set(pids)
        async with session.delete(admin + "/maintenance") as response:
            assert response.status == 200
        await asyncio.sleep(1.2)
        assert await answers(200) == set(pids)
