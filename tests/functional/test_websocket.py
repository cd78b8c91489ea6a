"""WebSocket upgrades pass through both ways, close codes and subprotocols kept."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import config_yaml, raw_exchange


# A WebSocket handshake on one connection that closes after the answer: its head but for the blank line.
HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def _ws_app(events: list) -> web.Application:
    async def handler(request):
        ws = web.WebSocketResponse(protocols=("hot-reload.v2",))
        await ws.prepare(request)
        events.append(("protocol", ws.ws_protocol, request.headers.get("Cookie")))
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                if message.data == "please close":
                    await ws.close(code=4001, message=b"server says bye")
                    break
                await ws.send_str("echo:" + message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        events.append(("closed", ws.close_code))
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def test_messages_flow_both_ways_and_server_close_code_is_kept(aiohttp_server, start_proxy):
    events: list = []
    server = await aiohttp_server(_ws_app(events))
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(proxy.url + "/ws", protocols=("hot-reload.v1", "hot-reload.v2"),
                                     headers={"Cookie": "session=s1"}) as ws:
            assert ws.protocol == "hot-reload.v2"
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
            await ws.send_bytes(b"\x00\x01\x02")
            assert (await ws.receive(timeout=5)).data == b"\x02\x01\x00"
            await ws.send_str("please close")
            closing = await ws.receive(timeout=5)
            assert closing.type is WSMsgType.CLOSE
            assert closing.data == 4001
            assert closing.extra == "server says bye"
    assert events[0] == ("protocol", "hot-reload.v2", "session=s1")


@pytest.mark.parametrize("closes", ["server", "client"])
async def test_a_websocket_is_logged_as_a_101_with_its_message_bytes(aiohttp_server, start_proxy, closes):
    # It was logged (and counted in metrics) as a 499, a client gone before its answer, with no bytes.
    events: list = []
    server = await aiohttp_server(_ws_app(events))
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(proxy.url + "/ws", headers={"X-Request-ID": "ws-" + closes}) as ws:
            await ws.send_str("hé")  # 3 bytes; its echo "echo:hé" 8
            assert (await ws.receive(timeout=5)).data == "echo:hé"
            await ws.send_bytes(b"\x00\x01\x02")
            assert (await ws.receive(timeout=5)).data == b"\x02\x01\x00"
            if closes == "server":
                await ws.send_str("please close")  # 12 bytes
                assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE
    sent = 3 + 3 + (12 if closes == "server" else 0)
    for _ in range(50):
        records = [json.loads(line) for line in proxy.log().splitlines()
                   if line.startswith("{") and json.loads(line).get("request_id") == "ws-" + closes]
        if records:
            break
        await asyncio.sleep(0.1)
    assert len(records) == 1, proxy.log()
    record = records[0]
    assert (record["status"], record["upstream_status"], record["format"]) == (101, 101, "passthrough"), record
    assert (record["bytes_in"], record["bytes_out"]) == (sent, 8 + 3), record


async def test_client_close_code_reaches_upstream(aiohttp_server, start_proxy):
    events: list = []
    server = await aiohttp_server(_ws_app(events))
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        ws = await client.ws_connect(proxy.url + "/ws")
        await ws.send_str("ping")
        assert (await ws.receive(timeout=5)).data == "echo:ping"
        await ws.close(code=4002, message=b"tab closed")
    for _ in range(100):
        if any(event[0] == "closed" for event in events):
            break
        await asyncio.sleep(0.05)
    assert ("closed", 4002) in events


async def _refused_upgrade(aiohttp_server, start_proxy, handler) -> aiohttp.WSServerHandshakeError:
    """What a client gets opening a WebSocket through the proxy to an upstream answering with `handler`."""
    app = web.Application()
    app.router.add_get("/ws", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(proxy.url + "/ws")
    return refused.value


async def test_upgrade_answered_without_101_is_a_502_problem(aiohttp_server, start_proxy):
    async def not_websocket(request):
        return web.Response(status=200, text="not a websocket")

    refused = await _refused_upgrade(aiohttp_server, start_proxy, not_websocket)
    assert refused.status == 502
    assert refused.headers["Proxy-Status"] == "errorproxy; error=http_upgrade_failed"


async def test_upgrade_answered_with_a_redirect_is_not_followed_but_passed_on(aiohttp_server, start_proxy):
    # Followed, a redirect sent the proxy's handshake wherever Location pointed, past every route.
    elsewhere = []

    async def echo(request):
        elsewhere.append(request.path)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    other = web.Application()
    other.router.add_get("/echo", echo)
    target = await aiohttp_server(other)

    async def moved(request):
        raise web.HTTPFound(str(target.make_url("/echo")))

    app = web.Application()
    app.router.add_get("/ws", moved)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    # A raw handshake: aiohttp's client would follow the 302 itself.
    reply = await raw_exchange(proxy.port, HANDSHAKE + b"\r\n")
    head = reply.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 302 "), reply
    assert b"\r\nLocation: " + str(target.make_url("/echo")).encode() + b"\r\n" in head
    assert b"\r\nProxy-Status: errorproxy; received-status=302\r\n" in head
    assert elsewhere == []


async def test_upgrade_refused_by_upstream_takes_the_routes_shape_and_is_logged_as_answered(aiohttp_server,
                                                                                             start_proxy):
    # Rendered as the upstream's error in the route's shape, negotiated on Accept as any error is;
    # it was plain problem+json whatever the route and the client, logged with no upstream status.
    async def forbidden(request):
        return web.Response(status=403, text="members only")

    app = web.Application()
    app.router.add_get("/ws", forbidden)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    reply = await raw_exchange(proxy.port, HANDSHAKE + b"Accept: text/html\r\nX-Request-ID: ws-403\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 "), reply
    assert b"\r\nContent-Type: text/html; charset=utf-8\r\n" in head and b"\r\nVary: Accept\r\n" in head, head
    assert b"<html" in body.lower()
    for _ in range(50):
        records = [json.loads(line) for line in proxy.log().splitlines()
                   if line.startswith("{") and json.loads(line).get("request_id") == "ws-403"]
        if records:
            break
        await asyncio.sleep(0.1)
    assert [(r["status"], r["upstream_status"], r["intercepted"], r["format"]) for r in records] == [
        (403, 403, True, "html")]


async def test_upgrade_refused_by_upstream_keeps_its_status_and_challenge(aiohttp_server, start_proxy):
    async def unauthorized(request):
        return web.Response(status=401, text="login first", headers={"WWW-Authenticate": 'Bearer realm="app"'})

    refused = await _refused_upgrade(aiohttp_server, start_proxy, unauthorized)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="app"'
    assert refused.headers["Proxy-Status"] == "errorproxy; received-status=401"


async def test_a_426_to_a_handshake_keeps_its_upgrade_header(aiohttp_server, start_proxy):
    # RFC 9110 §15.5.22: a 426 names the protocols to switch to in Upgrade.
    async def upgrade_required(request):
        return web.Response(status=426, headers={"Upgrade": "websocket.v2", "Connection": "Upgrade"})

    refused = await _refused_upgrade(aiohttp_server, start_proxy, upgrade_required)
    assert refused.status == 426
    assert refused.headers.getall("Upgrade") == ["websocket.v2"]


async def test_a_message_of_16_mib_is_relayed_and_a_larger_one_is_not(aiohttp_server, start_proxy):
    # aiohttp refuses a message of its max_msg_size, not only a larger one: 16 MiB exactly was refused.
    async def echo(request):
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for message in ws:
            await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    limit = 16 * 1024 * 1024
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(proxy.url + "/ws", max_msg_size=0) as ws:
            await ws.send_bytes(b"m" * limit)
            assert (await ws.receive(timeout=30)).data == b"m" * limit
            try:
                await ws.send_bytes(b"m" * (limit + 1))
            except ConnectionError:
                pass  # the proxy closed before the whole of it was sent
            # Not relayed: the WebSocket ends (1009 when its close frame gets through the client's own sending).
            ending = await ws.receive(timeout=30)
            assert ending.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR), ending.type
            assert ws.close_code in (1009, 1006)
