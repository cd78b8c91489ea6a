"""Reloads keep what is warm: an upstream whose settings did not change keeps its pooled
connections across SIGHUP, under load, and no request fails.

Connections are counted where they arrive: the upstream records the client
port of each request, one port a connection.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningProxy, config_yaml
from tests.functional.test_reload import rewrite

CLIENTS = 4  # requests in flight at once, so the pool holds about this many connections


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


async def _reload(proxy: RunningProxy, count: int, done: int) -> None:
    """SIGHUP, then wait for the `done + 1`-th "reloaded" line: one reload at a time."""
    proxy.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while len(re.findall(r"INFO errorproxy: reloaded ", proxy.log())) < done + 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"reload {count} not done within 5s:\n{proxy.log()[-2000:]}")
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_reloads_under_load_keep_the_pool(aiohttp_server, start_proxy):
    connections: set[object] = set()

    async def hello(request: web.Request) -> web.Response:
        connections.add(request.transport.get_extra_info("peername"))
        await asyncio.sleep(0.002)  # long enough for requests to overlap
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}"
    proxy = await start_proxy(config_yaml(url))
    stop = asyncio.Event()
    failures: list[str] = []
    sent = [0]

    async def client() -> None:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while not stop.is_set() and sent[0] < 20_000 and time.monotonic() < deadline:
                sent[0] += 1
                try:
                    async with session.get(proxy.url + "/") as response:
                        if response.status != 200 or await response.text() != "ok":
                            failures.append(f"{response.status} {(await response.text())[:200]}")
                except aiohttp.ClientError as exc:
                    failures.append(repr(exc))

    load = [asyncio.ensure_future(client()) for _ in range(CLIENTS)]
    deadline = time.monotonic() + 10
    while sent[0] < 200 and time.monotonic() < deadline:  # the pool fills, however loaded the machine
        await asyncio.sleep(0.02)
    before = len(connections)
    for number in range(20):  # the same file each time: every upstream unchanged
        await _reload(proxy, number, number)
        await asyncio.sleep(0.05)
    warm = len(connections) - before

    # The control: a setting of the upstream changes on each reload, so each
    # reload starts a new pool; the counting above would have seen that.
    for number in range(5):
        rewrite(proxy, config_yaml(url, upstream=f"idle_timeout: {61 + number}s"))
        await _reload(proxy, 20 + number, 20 + number)
        await asyncio.sleep(0.05)
    cold = len(connections) - before - warm
    stop.set()
    await asyncio.wait_for(asyncio.gather(*load), 40)
    kept = re.findall(r"reloaded .*\((\d+) kept warm\)", proxy.log())

    print(f"\nrequests {sent[0]}, failed {len(failures)}; upstream connections: {before} before the reloads, "
          f"{warm} new over 20 unchanged reloads, {cold} new over 5 changed ones")
    assert failures == []
    assert kept == ["1"] * 20 + ["0"] * 5
    assert before <= CLIENTS + 1
    assert warm <= 2, f"{warm} new upstream connections over 20 reloads that changed nothing"
    assert cold >= 5, "each reload that changed the upstream should have opened new connections"
