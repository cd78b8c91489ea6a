"""Start-up and graceful stop of the proxy process."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml


async def test_logs_where_it_listens_and_uses_uvloop(aiohttp_server, start_proxy):
    app = web.Application()
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    assert f"listening on {proxy.url}" in proxy.log()
    assert "uvloop event loop" in proxy.log()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stop_signal_drains_in_flight_requests_and_exits_0(aiohttp_server, start_proxy, signum):
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(1.5)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 10s}"))
    async with aiohttp.ClientSession() as client:
        in_flight = asyncio.ensure_future(client.get(proxy.url + "/slow"))
        await asyncio.wait_for(started.wait(), 5)
        proxy.process.send_signal(signum)
        await asyncio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(proxy.url + "/slow")  # no longer accepting
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200 and await response.text() == "finished"
    assert await asyncio.get_running_loop().run_in_executor(None, proxy.process.wait, 10) == 0
    assert "stopped" in proxy.log()


async def test_requests_past_the_grace_period_are_cut(aiohttp_server, start_proxy):
    async def stuck(request):
        await asyncio.sleep(30)
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/stuck", stuck)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 1s}"))
    async with aiohttp.ClientSession() as client:
        in_flight = asyncio.ensure_future(client.get(proxy.url + "/stuck"))
        await asyncio.sleep(0.5)
        proxy.process.send_signal(signal.SIGTERM)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(in_flight, 10)
    assert await asyncio.get_running_loop().run_in_executor(None, proxy.process.wait, 10) == 0
