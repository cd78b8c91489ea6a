"""Idle polling, seen from outside: a worker whose next bytes come soon polls for them rather than sleep.

A sleep is a voluntary context switch (/proc/PID/status). Requests one after
another on one connection give the proxy two waits each, for the upstream's
answer and for the client's next request; a proxy that sleeps through them
switches about twice a request, one that polls through them next to never.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists() or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's /proc and two CPUs")

REQUESTS = 200


@pytest.fixture
def http_parser() -> str:
    return "c-parser"  # the parser plays no part in when the loop sleeps


def _sleeps(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


async def _sleeps_a_request(aiohttp_server, start_proxy, server_yaml: str) -> float:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    upstream = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(upstream.make_url("")), top=server_yaml))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        async def one() -> None:
            async with session.get(f"{proxy.url}/ok") as response:
                assert response.status == 200
                assert await response.json() == {"ok": True}

        for _ in range(50):  # the window opens to the gaps it sees
            await one()
        before = _sleeps(proxy.process.pid)
        for _ in range(REQUESTS):
            await one()
        return (_sleeps(proxy.process.pid) - before) / REQUESTS


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def test_a_polling_worker_does_not_sleep_between_requests(aiohttp_server, start_proxy):
    started = []

    async def start(config: str, **kwargs):
        started.append(proxy := await start_proxy(config, **kwargs))
        return proxy

    # A ceiling of 5 ms: a busy test machine's gaps (the client and the upstream share this process) fit.
    assert await _sleeps_a_request(aiohttp_server, start, "server: {idle_poll: 5ms}") < 0.5
    # Once the requests stop, so does the polling: an idle worker spends no CPU.
    pid = started[0].process.pid
    await asyncio.sleep(0.1)
    before = _cpu_ticks(pid)
    await asyncio.sleep(1.0)
    assert _cpu_ticks(pid) - before <= 5  # clock ticks (10 ms each, mostly): a poll that ran on would take ~100


async def test_no_polling_sleeps_at_each_wait(aiohttp_server, start_proxy):
    assert await _sleeps_a_request(aiohttp_server, start_proxy, "server: {idle_poll: 0s}") >= 1


async def test_no_polling_on_one_cpu(aiohttp_server, start_proxy):
    """On one CPU the client and the upstream need the CPU the poller would hold: it sleeps."""
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mine)})  # the proxy, started now, inherits it
    try:
        async def pinned_start(config: str, **kwargs):
            proxy = await start_proxy(config, **kwargs)
            os.sched_setaffinity(0, mine)  # the client and the upstream here take both CPUs again
            return proxy

        assert await _sleeps_a_request(aiohttp_server, pinned_start, "server: {idle_poll: 5ms}") >= 1
    finally:
        os.sched_setaffinity(0, mine)
