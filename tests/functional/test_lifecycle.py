"""Start-up and graceful stop of the proxy process."""

from __future__ import annotations

import asyncio
import re
import signal

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


async def test_logs_where_it_listens_and_uses_uvloop(aiohttp_server, start_proxy):
    app = web.Application()
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    assert f"listening on {proxy.url}" in proxy.log()
    assert "uvloop event loop" in proxy.log()


async def test_errorproxy_loop_asyncio_runs_on_asyncios_own_loop(aiohttp_server, start_proxy):
    async def up(request):
        return web.Response(text="up")

    app = web.Application()
    app.router.add_get("/", up)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))), env={"ERRORPROXY_LOOP": "asyncio"})
    assert "asyncio event loop" in proxy.log()
    async with aiohttp.ClientSession() as client, client.get(proxy.url + "/") as response:
        assert (response.status, await response.text()) == (200, "up")


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


def _admin_url(log: str) -> str:
    return re.search(r"admin listening on (http://\S+?)[ ,\n]", log).group(1)


async def test_websocket_open_at_stop_is_closed_with_1001_after_the_grace_period(aiohttp_server, start_proxy):
    upstream_close: list[int | None] = []

    async def echo(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        upstream_close.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 1s}"))
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(proxy.url.replace("http", "ws") + "/ws") as ws:
            await ws.send_str("before")
            assert (await ws.receive(timeout=5)).data == "before"
            proxy.process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            await asyncio.sleep(0.3)
            await ws.send_str("during the grace period")  # still relayed both ways
            assert (await ws.receive(timeout=5)).data == "during the grace period"
            message = await ws.receive(timeout=10)
            closed_after = loop.time() - signalled
            assert message.type is aiohttp.WSMsgType.CLOSE and message.data == aiohttp.WSCloseCode.GOING_AWAY
            assert 0.9 <= closed_after < 4, closed_after
    assert await loop.run_in_executor(None, proxy.process.wait, 10) == 0
    await asyncio.sleep(0.2)
    assert upstream_close == [aiohttp.WSCloseCode.GOING_AWAY]
    assert "cut 1 request(s) still running after 1.0s" in proxy.log()


async def test_long_download_runs_through_the_grace_period_then_is_cut(aiohttp_server, start_proxy):
    async def endless(request):
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(200):  # 20 seconds, far past the grace period
            await response.write(b"x" * 1024)
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_get("/download", endless)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 1s}"))
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/download") as response:
            await response.content.readexactly(1024)
            proxy.process.send_signal(signal.SIGTERM)
            signalled = loop.time()
            during = 0
            with pytest.raises(aiohttp.ClientPayloadError):
                while loop.time() - signalled < 10:
                    chunk = await response.content.readany()
                    assert chunk, "the download must be cut, not ended as if complete"
                    during += len(chunk)
            cut_after = loop.time() - signalled
    assert during >= 5 * 1024  # it kept flowing during the grace period
    assert 0.9 <= cut_after < 4, cut_after
    assert await loop.run_in_executor(None, proxy.process.wait, 10) == 0


async def test_stop_delay_fails_readiness_first_and_keeps_accepting(aiohttp_server, start_proxy):
    async def hello(request):
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {stop_delay: 1500ms}"))
    admin = _admin_url(proxy.log())
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        async with client.get(admin + "/readyz") as response:
            assert response.status == 200
        proxy.process.send_signal(signal.SIGTERM)
        signalled = loop.time()
        await asyncio.sleep(0.3)
        async with client.get(admin + "/readyz") as response:
            assert response.status == 503
        # Out of rotation, but a client that has not heard yet is still served.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
            async with fresh.get(proxy.url + "/") as response:
                assert response.status == 200 and await response.text() == "hello"
        assert loop.time() - signalled < 1.5
        code = await loop.run_in_executor(None, proxy.process.wait, 10)
    assert code == 0
    assert loop.time() - signalled >= 1.5
    assert "still accepting for 1.5s (server.stop_delay)" in proxy.log()


async def test_upload_in_flight_at_stop_is_still_read_to_its_end(aiohttp_server, start_proxy):
    async def count(request):
        return web.Response(text=str(len(await request.read())))

    app = web.Application()
    app.router.add_post("/upload", count)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 10s}"))
    first_sent = asyncio.Event()

    async def slow_body():
        for number in range(10):
            yield b"u" * 10_000
            first_sent.set()
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession() as client:
        upload = asyncio.ensure_future(client.post(proxy.url + "/upload", data=slow_body()))
        await asyncio.wait_for(first_sent.wait(), 5)
        await asyncio.sleep(0.1)
        proxy.process.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(upload, 10)
        assert response.status == 200 and await response.text() == "100000"
    assert await asyncio.get_running_loop().run_in_executor(None, proxy.process.wait, 10) == 0
