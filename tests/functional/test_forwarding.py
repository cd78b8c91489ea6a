"""Byte-exact forwarding: methods, targets, headers, bodies, framing."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time

import aiohttp
from aiohttp import web

from tests.conftest import capture_upstream, config_yaml, raw_exchange, read_request_head


async def test_custom_method_and_raw_target_reach_upstream_unchanged(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 2\r\n\r\nok")
    proxy = await start_proxy(config_yaml(server.url))
    target = b"/dav/a%2Fb//c/./d/../e?x=%41&y=1+2&z"
    reply = await raw_exchange(proxy.port, b"PROPFIND " + target + b" HTTP/1.1\r\nHost: example.com\r\nDepth: 1\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 207 Multi-Status\r\n")
    assert reply.endswith(b"\r\n\r\nok")
    assert seen[0].startswith(b"PROPFIND " + target + b" HTTP/1.1\r\n")
    assert b"\r\nDepth: 1\r\n" in seen[0]


async def test_nothing_is_added_that_the_client_did_not_send(raw_server, start_proxy):
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    proxy = await start_proxy(config_yaml(server.url))
    await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Custom: 1\r\nConnection: close\r\n\r\n")
    names = [line.split(b":")[0].lower() for line in seen[0].split(b"\r\n")[1:] if line]
    assert sorted(names) == sorted([b"host", b"x-custom", b"x-forwarded-for", b"x-forwarded-proto",
                                    b"x-forwarded-host", b"x-real-ip", b"via", b"x-request-id"])


async def test_repeated_response_headers_keep_their_order(aiohttp_server, start_proxy):
    async def handler(request):
        response = web.Response(text="ok")
        for value in ("a=1; Path=/", "b=2; Path=/", "c=3; Path=/"):
            response.headers.add("Set-Cookie", value)
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/") as response:
            assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"]
            assert response.headers.getall("X-Multi") == ["one", "two"]


async def test_gzip_body_passes_both_ways_untouched(aiohttp_server, start_proxy):
    payload = gzip.compress(b"hello " * 1000)
    received = {}

    async def handler(request):
        received["encoding"] = request.headers.get("Content-Encoding")
        received["body"] = await request.read()
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    app = web.Application()
    app.router.add_post("/", handler)
    server = await aiohttp_server(app, auto_decompress=False)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.post(proxy.url + "/", data=payload, headers={"Content-Encoding": "gzip"}) as response:
            body = await response.read()
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Content-Length"] == str(len(payload))
    assert body == payload
    assert received == {"encoding": "gzip", "body": payload}


def _answering_together(count: int, heads: list[bytes], answer):
    """An upstream that holds each request until `count` have come (each head added to `heads`),
    then writes `await answer(head)` for each, as for any later one."""
    everyone = asyncio.Event()

    async def upstream(reader, writer):
        while True:
            head = await read_request_head(reader)
            heads.append(head)
            if len(heads) >= count:
                everyone.set()
            await everyone.wait()
            writer.write(await answer(head))
            await writer.drain()

    return upstream


async def test_responses_sent_in_one_turn_of_the_loop_each_reach_their_client_whole(raw_server, start_proxy):
    """With requests under way together, the proxy holds their small writes to the end of the
    loop's turn (upstream.coalesce): each response still arrives whole, in its order, before any
    close its framing calls for, whether it is passed through or rendered as a problem."""
    async def answer(head: bytes) -> bytes:
        path = head.split(b" ")[1]
        if path.startswith(b"/fail/"):
            body = b"Traceback (most recent call last):\n  File \"app.py\", line 1\n"
            return (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        body = b"answer to " + path
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    heads: list[bytes] = []
    server = await raw_server(_answering_together(24, heads, answer))  # the first 24 answered all at once
    proxy = await start_proxy(config_yaml(server.url))

    def get(path: str, version: str = "1.1", close: bool = True) -> bytes:
        return (f"GET {path} HTTP/{version}\r\nHost: x\r\n" + ("Connection: close\r\n" if close else "") + "\r\n").encode()

    exchanges = [get(f"/close/{n}") for n in range(6)]
    exchanges += [get(f"/old/{n}", "1.0", close=False) for n in range(6)]
    exchanges += [get(f"/kept/{n}/a", close=False) + get(f"/kept/{n}/b") for n in range(6)]  # pipelined
    exchanges += [get(f"/fail/{n}") for n in range(6)]
    replies = await asyncio.gather(*(raw_exchange(proxy.port, data) for data in exchanges))

    def responses(reply: bytes) -> list[tuple[bytes, bytes]]:
        """Each response in `reply`, as (status line, body), split by Content-Length."""
        found = []
        while reply:
            head, _, rest = reply.partition(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                         .split(b":")[1])
            found.append((head.split(b"\r\n")[0], rest[:length]))
            assert len(rest) >= length, reply
            reply = rest[length:]
        return found

    for n in range(6):
        assert responses(replies[n]) == [(b"HTTP/1.1 200 OK", b"answer to /close/%d" % n)]
        assert responses(replies[6 + n]) == [(b"HTTP/1.0 200 OK", b"answer to /old/%d" % n)]
        assert responses(replies[12 + n]) == [(b"HTTP/1.1 200 OK", b"answer to /kept/%d/a" % n),
                                              (b"HTTP/1.1 200 OK", b"answer to /kept/%d/b" % n)]
        [(status, body)] = responses(replies[18 + n])
        assert status.startswith(b"HTTP/1.1 50") and b"Traceback" not in body
        assert json.loads(body)["status"] == int(status.split(b" ")[1])
    assert len(heads) == 30


async def test_a_pipelined_request_answered_at_once_comes_after_the_held_answer_before_it(raw_server, start_proxy):
    """A response held for the end of the loop's turn (another request is under way) is followed, on
    the same connection, by the answer to a pipelined request the proxy refuses as it parses it: the
    refusal is written by aiohttp in that same turn, and must still come second."""
    async def answer(head: bytes) -> bytes:
        if head.startswith(b"GET /other "):
            await asyncio.sleep(0.3)  # under way while /first is answered: the proxy holds that answer
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"

    server = await raw_server(_answering_together(2, [], answer))
    proxy = await start_proxy(config_yaml(server.url))
    other = asyncio.ensure_future(raw_exchange(proxy.port, b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    reply = await raw_exchange(proxy.port, b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                                           b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert (await other).endswith(b"\r\n\r\nfirst")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:200]
    first, _, rest = reply.partition(b"\r\n\r\nfirst")
    assert rest.startswith(b"HTTP/1.1 405 "), rest[:60]  # then the refusal of CONNECT


async def test_an_answer_before_the_body_was_read_leaves_the_rest_drained_without_an_error(aiohttp_server, start_proxy):
    # The upstream answers without reading the upload: the proxy stops sending it, answers the
    # client, and reads the rest of the client's body away, on the same connection, while the task
    # that was sending it upstream unwinds. That task, still a reader of the body, made aiohttp's
    # drain raise (RuntimeError, the connection reset), or cleared the drain's waiter, so the
    # drain waited out all of lingering_time before the next request was read.
    async def early(request):
        return web.Response(text="early")

    app = web.Application()
    app.router.add_post("/early", early)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {lingering_time: 5}"))
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB
    began = time.monotonic()
    async with aiohttp.ClientSession() as client:
        for _ in range(8):
            async with client.post(proxy.url + "/early", data=io.BytesIO(body), headers={"Expect": ""}) as response:
                assert response.status == 200
                assert await response.text() == "early"
    assert time.monotonic() - began < 5, "a drain waited out lingering_time"
    assert "Unhandled exception" not in proxy.log()  # and no traceback: start_proxy checks every log for one


async def test_max_forwards_is_counted_down_and_at_zero_the_proxy_answers(raw_server, start_proxy):
    # RFC 9110 §7.6.2: an OPTIONS or TRACE goes on with Max-Forwards one lower; at 0 the proxy
    # answers it as its final recipient: OPTIONS with Allow, TRACE with the request echoed, but
    # never its credentials. Other methods, and a value that is not a count, pass as they came.
    server, seen = await capture_upstream(raw_server, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nupstream")
    proxy = await start_proxy(config_yaml(server.url).replace("match: {path_prefix: /}",
                                                              "match: {path_prefix: /, methods: [GET, OPTIONS, TRACE]}"))

    async def ask(method: bytes, count: bytes, extra: bytes = b"") -> tuple[bytes, bytes]:
        reply = await raw_exchange(proxy.port, method + b" /x?y=1 HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: " + count
                                   + b"\r\n" + extra + b"Connection: close\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        return head, body

    head, body = await ask(b"OPTIONS", b"0")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nAllow: GET, OPTIONS, TRACE\r\n" in head, head
    assert body == b"" and seen == []
    head, body = await ask(b"TRACE", b"0", b"X-A: 1\r\nCookie: session=secret\r\nAuthorization: Basic c2VjcmV0\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Type: message/http\r\n" in head, head
    assert body.startswith(b"TRACE /x?y=1 HTTP/1.1\r\nHost: a.test\r\nMax-Forwards: 0\r\nX-A: 1\r\n"), body
    assert b"secret" not in body and b"c2VjcmV0" not in body and seen == []
    for method, count, sent in ((b"OPTIONS", b"3", b"\r\nMax-Forwards: 2\r\n"),
                                (b"TRACE", b"1", b"\r\nMax-Forwards: 0\r\n"),
                                (b"OPTIONS", b"x", b"\r\nMax-Forwards: x\r\n"),
                                (b"GET", b"0", b"\r\nMax-Forwards: 0\r\n")):
        seen.clear()
        head, body = await ask(method, count)
        assert body == b"upstream", (method, count, head)
        assert sent in seen[0], (method, count, seen)
