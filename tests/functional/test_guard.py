"""The conflict guard, end to end: a legacy upstream with no concurrency control, the proxy
as a real process in front of it, real clients racing through it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ROOT, config_yaml
from tests.functional.redis_server import free_port


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


class Legacy:
    """A document store with no ETags and no If-Match: the last write wins, silently."""

    def __init__(self, put_delay: float = 0.0) -> None:
        self.documents: dict[str, dict] = {"42": {"id": 42, "items": []}, "v": {"id": 1, "version": 7}}
        self.put_delay = put_delay
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.on_check = None  # called when the guard's own GET arrives (it asks for identity coding)
        self.put_times: list[tuple[float, float]] = []  # (arrived, answered) of each PUT

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/documents/big", self.big)
        app.router.add_get("/documents/stream", self.stream)
        app.router.add_get("/documents/weak", self.weak)
        app.router.add_get("/documents/own", self.own)
        app.router.add_put("/documents/own", self.put_own)
        app.router.add_get("/private/{id}", self.private)
        app.router.add_put("/private/{id}", self.put)
        app.router.add_get("/documents/{id}", self.get)
        app.router.add_put("/documents/{id}", self.put)
        app.router.add_delete("/documents/{id}", self.delete)
        app.middlewares.append(self.record)
        return app

    @web.middleware
    async def record(self, request, handler):
        self.seen.append((request.method, request.path, dict(request.headers)))
        return await handler(request)

    async def get(self, request):
        if self.on_check is not None and request.headers.get("Accept-Encoding") == "identity":
            self.on_check()
        document = self.documents.get(request.match_info["id"])
        if document is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(document)

    async def put(self, request):
        arrived = time.monotonic()
        document = await request.json()
        await asyncio.sleep(self.put_delay)  # read, think, write: the lost-update window
        self.documents[request.match_info["id"]] = document
        self.put_times.append((arrived, time.monotonic()))
        return web.json_response(document)

    async def delete(self, request):
        self.documents.pop(request.match_info["id"], None)
        return web.Response(status=204)

    async def big(self, request):
        return web.Response(body=b"x" * 4096, content_type="application/octet-stream")

    async def stream(self, request):
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"y" * 512)
        await response.write_eof()
        return response

    async def weak(self, request):
        return web.json_response({"id": "weak"}, headers={"ETag": 'W/"w1"'})

    async def own(self, request):
        return web.json_response({"id": "own"}, headers={"ETag": '"u1"'})

    async def put_own(self, request):
        return web.json_response({"id": "own"}, headers={"ETag": '"u2"'})

    async def private(self, request):
        if request.headers.get("Authorization") != "Bearer alice" or "session=s1" not in request.headers.get("Cookie", ""):
            return web.json_response({"error": "who are you"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="docs"'})
        return web.json_response({"id": request.match_info["id"], "secret": True})

    def writes(self) -> list[dict[str, str]]:
        return [headers for method, _, headers in self.seen if method == "PUT"]


GUARDED = """
concurrency:
  max_body: 1KiB
  lock_timeout: 300ms
"""


async def _guarded(aiohttp_server, start_proxy, legacy: Legacy, route: str = GUARDED, extra_routes: str = ""):
    server = await aiohttp_server(legacy.app())
    upstream = str(server.make_url(""))
    text = config_yaml(upstream, route=route).replace("routes:\n", "routes:\n" + extra_routes, 1)
    return await start_proxy(text)


async def _call(url: str, method: str = "GET", **kwargs) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.request(method, url, **kwargs) as response:
            return response.status, response.headers.copy(), await response.read()


async def test_reads_get_a_strong_etag_that_answers_304(aiohttp_server, start_proxy):
    proxy = await _guarded(aiohttp_server, start_proxy, Legacy())
    url = proxy.url + "/documents/42"
    status, headers, body = await _call(url)
    etag = headers["ETag"]
    assert status == 200 and etag.startswith('"b-') and json.loads(body) == {"id": 42, "items": []}
    assert (await _call(url))[1]["ETag"] == etag  # same representation, same ETag
    status, headers, body = await _call(url, headers={"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    assert (await _call(url, headers={"If-None-Match": f'"other", W/{etag}'}))[0] == 304  # weak comparison
    assert (await _call(url, headers={"If-None-Match": '"other"'}))[0] == 200
    status, headers, body = await _call(url, "HEAD")
    assert (status, headers["ETag"], body, headers["Content-Length"]) == (200, etag, b"", "23")
    assert (await _call(url, "HEAD", headers={"If-None-Match": etag}))[0] == 304


async def test_the_upstreams_own_strong_etag_is_kept_and_a_weak_one_replaced(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy)
    assert (await _call(proxy.url + "/documents/own"))[1]["ETag"] == '"u1"'
    strong = (await _call(proxy.url + "/documents/weak"))[1]["ETag"]
    assert strong.startswith('"b-')  # W/"w1" could never satisfy an If-Match
    assert (await _call(proxy.url + "/documents/weak", headers={"If-None-Match": "W/" + strong}))[0] == 304
    assert (await _call(proxy.url + "/documents/weak", "HEAD"))[1]["ETag"] == strong  # HEAD: from a GET
    status, headers, _ = await _call(proxy.url + "/documents/own", "PUT", json={}, headers={"If-Match": '"u1"'})
    assert (status, headers["ETag"]) == (200, '"u2"')
    assert legacy.writes()[-1]["If-Match"] == '"u1"'  # its own ETag: the upstream may check it too


async def test_a_representation_over_max_body_passes_untouched_and_cannot_be_checked(aiohttp_server, start_proxy):
    proxy = await _guarded(aiohttp_server, start_proxy, Legacy())
    for path, byte in (("/documents/big", b"x"), ("/documents/stream", b"y")):  # announced, and chunked
        status, headers, body = await _call(proxy.url + path)
        assert status == 200 and "ETag" not in headers and body == byte * 4096
    status, headers, body = await _call(proxy.url + "/documents/big", "PUT", json={}, headers={"If-Match": '"b-x"'})
    problem = json.loads(body)
    assert status == 412 and "current_etag" not in problem
    assert "larger than max_body (1024 bytes)" in problem["detail"] and "not forwarded" in problem["detail"]


async def test_a_write_without_if_match_gets_428(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy)
    status, headers, body = await _call(proxy.url + "/documents/42", "PUT", json={"id": 42, "items": ["x"]})
    problem = json.loads(body)
    assert status == 428 and headers["Content-Type"] == "application/problem+json"
    assert "If-Match" in problem["detail"] and problem["instance"] == "/documents/42"
    assert legacy.writes() == [] and legacy.documents["42"]["items"] == []
    assert f"conflict guard refused PUT /documents/42 on route all: 428 (no If-Match) request_id={problem['request_id']}" \
        in proxy.log()


async def test_a_stale_if_match_gets_412_with_the_current_etag(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy)
    url = proxy.url + "/documents/42"
    first = (await _call(url))[1]["ETag"]
    status, headers, _ = await _call(url, "PUT", json={"id": 42, "items": ["a"]}, headers={"If-Match": first})
    second = headers["ETag"]
    assert status == 200 and second not in (first, None)  # the new ETag, from a GET under the lock
    assert (await _call(url))[1]["ETag"] == second
    status, headers, body = await _call(url, "PUT", json={"id": 42, "items": ["b"]}, headers={"If-Match": first})
    problem = json.loads(body)
    assert (status, headers["ETag"], problem["current_etag"]) == (412, second, second)
    assert "Fetch it again" in problem["detail"] and "If-Match" in problem["detail"]
    assert legacy.documents["42"]["items"] == ["a"]  # the stale write never reached the upstream
    assert (await _call(url, "PUT", json={}, headers={"If-Match": "W/" + second}))[0] == 412  # strong comparison
    assert (await _call(url, "PUT", json={}, headers={"If-Match": "v7"}))[0] == 400  # not an entity tag
    assert (await _call(url, "PUT", json={}))[0] == 428
    admin = re.search(r"admin listening on (http://\S+)", proxy.log()).group(1)
    metrics = (await _call(admin + "/metrics"))[2].decode()
    assert 'errorproxy_conflicts_prevented_total{route="all"} 2.0' in metrics
    assert 'errorproxy_precondition_required_total{route="all"} 1.0' in metrics
    assert 'errorproxy_lock_wait_seconds_count{route="all"} 3.0' in metrics  # the 400 and the 428 took no lock


async def test_if_match_star_and_if_none_match_star(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy)
    new = proxy.url + "/documents/7"
    assert (await _call(new, "PUT", json={"id": 7}, headers={"If-Match": "*"}))[0] == 412  # must exist
    status, headers, _ = await _call(new, "PUT", json={"id": 7}, headers={"If-None-Match": "*"})
    assert status == 200 and headers["ETag"].startswith('"b-')  # created
    status, headers, body = await _call(new, "PUT", json={"id": 8}, headers={"If-None-Match": "*"})
    assert status == 412 and json.loads(body)["current_etag"] == headers["ETag"]  # create only: it exists
    assert (await _call(new, "PUT", json={"id": 9}, headers={"If-Match": "*"}))[0] == 200
    assert legacy.documents["7"] == {"id": 9}
    status, headers, _ = await _call(new, "DELETE", headers={"If-Match": (await _call(new))[1]["ETag"]})
    assert status == 204 and "7" not in legacy.documents


async def test_the_guards_get_carries_the_clients_credentials(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy, extra_routes="""\
  - name: private
    match: {path_prefix: /private/}
    upstream: app
    concurrency: {on_mismatch: 409}
""")
    credentials = {"Authorization": "Bearer alice", "Cookie": "session=s1"}
    url = proxy.url + "/private/3"
    etag = (await _call(url, headers=credentials))[1]["ETag"]
    status, headers, _ = await _call(url, "PUT", json={"id": 3}, headers={
        **credentials, "If-Match": etag, "X-Fencing-Token": "999999", "X-HTTP-Method-Override": "PUT"})
    assert status == 200
    check = [headers for method, path, headers in legacy.seen if method == "GET" and path == "/private/3"][-2]
    assert check["Authorization"] == "Bearer alice" and check["Cookie"] == "session=s1"
    assert not {"If-Match", "Content-Length", "Content-Type", "X-HTTP-Method-Override"} & set(check)
    assert check["Accept-Encoding"] == "identity"
    write = legacy.writes()[-1]
    assert "X-Fencing-Token" not in write  # a client's own token never reaches the upstream (local lock: none)
    assert "If-Match" not in write  # checked by the proxy, an ETag the upstream never made
    # Without the credentials the upstream refuses the guard's GET: the client sees why.
    status, headers, _ = await _call(url, "PUT", json={}, headers={"If-Match": etag})
    assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="docs"')
    # on_mismatch: 409 for clients written against 409
    status, _, body = await _call(url, "PUT", json={}, headers={**credentials, "If-Match": '"stale"'})
    assert status == 409 and json.loads(body)["current_etag"] == etag


async def test_a_version_field_gives_the_etag(aiohttp_server, start_proxy):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy, route="concurrency: {etag: 'pointer:/version'}")
    url = proxy.url + "/documents/v"
    assert (await _call(url))[1]["ETag"] == '"7"'
    status, headers, _ = await _call(url, "PUT", json={"id": 1, "version": 8}, headers={"If-Match": '"7"'})
    assert (status, headers["ETag"]) == (200, '"8"')
    assert (await _call(url, "PUT", json={"id": 1, "version": 9}, headers={"If-Match": '"7"'}))[0] == 412


async def test_a_write_waiting_past_lock_timeout_gets_503(aiohttp_server, start_proxy):
    legacy = Legacy(put_delay=1.0)
    proxy = await _guarded(aiohttp_server, start_proxy, legacy,
                           route="concurrency: {require_if_match: false, lock_timeout: 200ms}")
    url = proxy.url + "/documents/42"
    first = asyncio.create_task(_call(url, "PUT", json={"id": 42, "items": [1]}))
    await asyncio.sleep(0.3)
    status, headers, body = await _call(url, "PUT", json={"id": 42, "items": [2]})
    assert (status, headers["Retry-After"]) == (503, "1") and "did not finish in time" in json.loads(body)["detail"]
    assert (await first)[0] == 200
    assert legacy.documents["42"]["items"] == [1]


async def test_a_writer_that_leaves_keeps_the_lock_until_the_upstream_answered(aiohttp_server, start_proxy):
    # Alice's PUT reached the upstream; she left before its answer. The lock went with her, so Bob's
    # write, checked against the old version, was let through, and Alice's then landed over it.
    legacy = Legacy(put_delay=1.5)
    proxy = await _guarded(aiohttp_server, start_proxy, legacy, route="concurrency: {lock_timeout: 5s}")
    url = proxy.url + "/documents/42"
    status, headers, _ = await _call(url)
    etag = headers["ETag"]
    alice = asyncio.create_task(_call(url, "PUT", json={"id": 42, "items": ["alice"]}, headers={"If-Match": etag}))
    for _ in range(100):  # until her PUT is at the upstream
        if legacy.writes():
            break
        await asyncio.sleep(0.02)
    alice.cancel()  # she leaves
    status, headers, body = await _call(url, "PUT", json={"id": 42, "items": ["bob"]}, headers={"If-Match": etag})
    assert status == 412, (status, body)  # he waited for the lock, and was checked against alice's write
    assert legacy.documents["42"]["items"] == ["alice"]
    assert len(legacy.writes()) == 1


async def _race(urls: list[str], clients: int) -> list[tuple[str | None, int]]:
    """`clients` edits of /documents/42, all at once: read, append one's name, write with If-Match
    (when the read gave an ETag), and on 412 read again and retry. Client i goes through urls[i % len]."""
    attempts: list[tuple[str | None, int]] = []
    start = asyncio.Event()

    async def edit(who: int, client: aiohttp.ClientSession) -> None:
        url = urls[who % len(urls)] + "/documents/42"
        await start.wait()
        for _ in range(clients + 5):
            async with client.get(url) as response:
                etag, document = response.headers.get("ETag"), await response.json()
            document["items"].append(who)
            headers = {"If-Match": etag} if etag else {}
            async with client.put(url, json=document, headers=headers) as response:
                attempts.append((etag, response.status))
                if response.status == 200:
                    return
                assert response.status == 412, await response.text()
        raise AssertionError(f"client {who} never got its write in")

    async with aiohttp.ClientSession() as client:
        tasks = [asyncio.create_task(edit(who, client)) for who in range(clients)]
        await asyncio.sleep(0.05)
        start.set()
        await asyncio.gather(*tasks)
    return attempts


def _assert_no_lost_update(legacy: Legacy, attempts: list[tuple[str | None, int]], clients: int) -> None:
    assert sorted(legacy.documents["42"]["items"]) == list(range(clients))  # every edit is there, once
    wins: dict[str | None, int] = {}
    for etag, status in attempts:
        wins[etag] = wins.get(etag, 0) + (status == 200)
    assert all(count == 1 for count in wins.values()), wins  # exactly one write won per version read
    assert sum(status == 412 for _, status in attempts) >= clients - 1  # the race did happen


async def test_racing_clients_lose_no_update_through_the_guard(aiohttp_server, start_proxy):
    clients = 8
    # Without the guard, the same race loses edits: this is what the guard is for.
    unguarded = Legacy(put_delay=0.02)
    proxy = await _guarded(aiohttp_server, start_proxy, unguarded, route="")
    attempts = await _race([proxy.url], clients)
    assert all(status == 200 for _, status in attempts) and len(attempts) == clients
    assert len(unguarded.documents["42"]["items"]) < clients

    legacy = Legacy(put_delay=0.02)
    proxy = await _guarded(aiohttp_server, start_proxy, legacy)
    attempts = await _race([proxy.url], clients)
    _assert_no_lost_update(legacy, attempts, clients)


def _redis_route(url: str, **options: str) -> str:
    settings = ", ".join(f"{key}: {value}" for key, value in {"lock": url, "lock_timeout": "3s", **options}.items())
    return f"concurrency: {{{settings}}}"


async def test_two_proxies_sharing_redis_lose_no_update(aiohttp_server, start_proxy, redis_server):
    clients = 8
    legacy = Legacy(put_delay=0.02)
    server = await aiohttp_server(legacy.app())
    config = config_yaml(str(server.make_url("")), route=_redis_route(redis_server.url))
    proxies = [await start_proxy(config), await start_proxy(config)]
    attempts = await _race([proxy.url for proxy in proxies], clients)
    _assert_no_lost_update(legacy, attempts, clients)
    tokens = [int(headers["X-Fencing-Token"]) for headers in legacy.writes()]
    assert len(tokens) == clients and tokens == sorted(set(tokens))  # fencing tokens rise with every write
    # Every lock released. A write's lock goes right after its response is written, so the last
    # client may read its answer a moment before the release reaches Redis.
    deadline = time.monotonic() + 2
    while not redis_server.command("KEYS", "errorproxy:lock:*").startswith(b"*0") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert redis_server.command("KEYS", "errorproxy:lock:*").startswith(b"*0")


async def test_redis_stopped_mid_run_fails_closed_or_forwards_as_configured(aiohttp_server, start_proxy,
                                                                             redis_server):
    legacy = Legacy()
    server = await aiohttp_server(legacy.app())
    forward = f"""\
  - name: forward
    match: {{path_prefix: /forward/}}
    upstream: app
    strip_prefix: /forward
    {_redis_route(redis_server.url, on_lock_unavailable="forward")}
"""
    text = config_yaml(str(server.make_url("")), route=_redis_route(redis_server.url))
    proxy = await start_proxy(text.replace("routes:\n", "routes:\n" + forward, 1))

    async def write(prefix: str, items: list) -> tuple[int, dict, bytes]:
        url = proxy.url + prefix + "/documents/42"
        etag = (await _call(url))[1]["ETag"]
        return await _call(url, "PUT", json={"id": 42, "items": items}, headers={"If-Match": etag})

    assert (await write("", [1]))[0] == 200
    redis_server.stop()
    status, headers, body = await write("", [2])
    problem = json.loads(body)
    assert (status, headers["Retry-After"]) == (503, "5") and "lock" in problem["detail"]
    assert "not forwarded" in problem["detail"] and legacy.documents["42"]["items"] == [1]
    assert "lock store unreachable" in proxy.log()
    status, headers, _ = await write("/forward", [3])  # the explicit opt-out: checked, then forwarded
    assert status == 200 and legacy.documents["42"]["items"] == [3]
    assert "X-Fencing-Token" not in legacy.writes()[-1]
    redis_server.start()  # back on the same port: the fail-closed route works again
    assert (await write("", [4]))[0] == 200 and legacy.documents["42"]["items"] == [4]


@pytest.fixture
def guarded_demo(tmp_path):
    """`python -m proxy demo` on free ports, its admin listener too (so it runs beside another demo)."""
    out = tmp_path / "demo.out"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ERRORPROXY_")},
           "PYTHONUNBUFFERED": "1", "ERRORPROXY_ADMIN": "127.0.0.1:0"}
    port = free_port()
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "demo", "--listen", f"127.0.0.1:{port}",
             "--upstream-listen", f"127.0.0.1:{free_port()}"],
            stdout=stdout, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while "Ctrl-C stops both." not in out.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"demo did not start (exit {process.returncode}):\n{out.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", out
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_demo_guards_its_notes(guarded_demo):
    proxy, out = guarded_demo
    banner = out.read_text()
    assert f"curl -i {proxy}/guarded/notes/1" in banner and f"curl -i {proxy}/notes/1 -X PUT" in banner
    note = {"id": 1, "title": "Shopping list"}
    # Through the unguarded route the last writer wins: both writes succeed, one edit is lost.
    read = json.loads((await _call(proxy + "/notes/1"))[2])
    assert "ETag" not in (await _call(proxy + "/notes/1"))[1]
    for item in ("eggs", "bread"):
        assert (await _call(proxy + "/notes/1", "PUT", json={**note, "items": read["items"] + [item]}))[0] == 200
    assert json.loads((await _call(proxy + "/notes/1"))[2])["items"] == ["milk", "bread"]
    # Through the guard the second writer is told, refetches, and both edits stay.
    url = proxy + "/guarded/notes/1"
    status, headers, body = await _call(url)
    etag, items = headers["ETag"], json.loads(body)["items"]
    assert (await _call(url, "PUT", json={**note, "items": items + ["eggs"]}, headers={"If-Match": etag}))[0] == 200
    status, headers, body = await _call(url, "PUT", json={**note, "items": items + ["jam"]}, headers={"If-Match": etag})
    assert status == 412 and json.loads(body)["current_etag"] == headers["ETag"] != etag
    status, headers, body = await _call(url)
    retry = {**note, "items": json.loads(body)["items"] + ["jam"]}
    assert (await _call(url, "PUT", json=retry, headers={"If-Match": headers["ETag"]}))[0] == 200
    assert json.loads((await _call(url))[2])["items"] == ["milk", "bread", "eggs", "jam"]
    assert (await _call(url, "PUT", json=note))[0] == 428


async def test_a_write_whose_redis_lock_was_lost_is_not_forwarded(aiohttp_server, start_proxy, redis_server):
    legacy = Legacy()
    proxy = await _guarded(aiohttp_server, start_proxy, legacy, route=_redis_route(redis_server.url))
    url = proxy.url + "/documents/42"
    etag = (await _call(url))[1]["ETag"]
    # While the guard reads the resource, its lock vanishes (as when its lease ran out).
    legacy.on_check = lambda: redis_server.command("DEL", "errorproxy:lock:app:/documents/42")
    status, headers, body = await _call(url, "PUT", json={"id": 42, "items": ["late"]}, headers={"If-Match": etag})
    assert (status, headers["Retry-After"]) == (503, "1") and "expired" in json.loads(body)["detail"]
    assert legacy.writes() == [] and legacy.documents["42"]["items"] == []
    assert "the lock's lease ran out before forwarding" in proxy.log()


async def test_a_slow_write_keeps_its_redis_lease(aiohttp_server, start_proxy, redis_server):
    """A write that outlives its lease twice: renewed while it runs, the other proxy's write waits for it.
    (The lease is a second, not less: a loaded machine can stall a proxy for a few hundred ms; and the
    second write may wait 8 s, far past the first's 2.2 s, for the same reason.)"""
    legacy = Legacy(put_delay=2.2)
    server = await aiohttp_server(legacy.app())
    config = config_yaml(str(server.make_url("")), route=_redis_route(
        redis_server.url, lock_lease="1s", lock_timeout="8s", require_if_match="false"))
    first, second = await start_proxy(config), await start_proxy(config)
    slow = asyncio.create_task(_call(first.url + "/documents/42", "PUT", json={"id": 42, "items": [1]}))
    while not legacy.writes():
        await asyncio.sleep(0.01)
    status, _, _ = await _call(second.url + "/documents/42", "PUT", json={"id": 42, "items": [2]})
    assert status == 200 and (await slow)[0] == 200
    (_, first_done), (second_arrived, _) = legacy.put_times
    assert second_arrived >= first_done  # never two writes at once, though the first outlived its lease
    assert legacy.documents["42"]["items"] == [2]
