"""Reloading the configuration (SIGHUP, and the file watcher) while requests keep flowing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningProxy


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


CHUNK = b"a" * 65536
CHUNKS = 30


def two_upstreams(url_a: str, url_b: str, target: str, top: str = "", route: str = "") -> str:
    """One catch-all route to upstream `target` ("a" or "b"); both upstreams are defined."""
    return f"""
listen: 127.0.0.1:0
{top}
upstreams:
  a: {url_a}
  b: {url_b}
routes:
  - name: all
    match: {{path_prefix: /}}
    upstream: {target}
    {route}
"""


INVALID = """
listen: 127.0.0.1:0
upstreams:
  a: http://127.0.0.1:1
routes:
  - name: all
    match: {path_prefix: /}
    upstream: nowhere
    max_body_size: lots
"""


async def upstream(aiohttp_server, name: str):
    """A service answering its own name, with a slow download at /download."""
    async def hello(request):
        return web.Response(text=name)

    async def download(request):
        response = web.StreamResponse()
        response.content_length = len(CHUNK) * CHUNKS
        await response.prepare(request)
        for _ in range(CHUNKS):
            await response.write(CHUNK)
            await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/download", download)
    return await aiohttp_server(app)


def rewrite(proxy: RunningProxy, text: str) -> None:
    """Replace the config file whole, as an editor or a ConfigMap update does."""
    assert proxy.config_path is not None
    temporary = proxy.config_path.with_suffix(".new")
    temporary.write_text(text)
    os.replace(temporary, proxy.config_path)


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


async def answers(session: aiohttp.ClientSession, url: str, body: str) -> bool:
    async with session.get(url) as response:
        return response.status == 200 and await response.text() == body


async def log_has(proxy: RunningProxy, pattern: str, count: int = 1) -> bool:
    return len(re.findall(pattern, proxy.log())) >= count


def admin_url(proxy: RunningProxy) -> str:
    return re.search(r"admin listening on (http://\S+?)[ ,\n]", proxy.log()).group(1)


async def test_reloads_under_load_drop_no_request(aiohttp_server, start_proxy):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a"))
    reloads_done = asyncio.Event()
    failures: list[str] = []
    answered: dict[str, int] = {"A": 0, "B": 0}

    async def client() -> int:
        sent = 0
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            # At least 100 requests each, and on until the reloads are over; never past 5000 or 30s.
            while (sent < 100 or not reloads_done.is_set()) and sent < 5000 and time.monotonic() < deadline:
                sent += 1
                try:
                    async with session.get(proxy.url + "/") as response:
                        text = await response.text()
                        if response.status != 200 or text not in answered:
                            failures.append(f"{response.status} {text[:200]}")
                        else:
                            answered[text] += 1
                except aiohttp.ClientError as exc:
                    failures.append(repr(exc))
        return sent

    load = [asyncio.ensure_future(client()) for _ in range(4)]
    async with aiohttp.ClientSession() as probe:
        target = "A"
        for number in range(20):
            if number == 10:
                rewrite(proxy, INVALID)
                proxy.process.send_signal(signal.SIGHUP)
                await wait_for(lambda: log_has(proxy, r"reload refused: \d+ problem"), "the invalid config refused")
                assert await answers(probe, proxy.url + "/", target), "the running config must stay"
            else:
                target = "B" if target == "A" else "A"
                rewrite(proxy, two_upstreams(url_a, url_b, target.lower()))
                proxy.process.send_signal(signal.SIGHUP)
                await wait_for(lambda: answers(probe, proxy.url + "/", target), f"reload {number} to {target}")
            await asyncio.sleep(0.2)
        reloads_done.set()
        sent = sum(await asyncio.wait_for(asyncio.gather(*load), 40))
        assert failures == [] and sent >= 400
        assert answered["A"] > 0 and answered["B"] > 0
        log = proxy.log()
        assert len(re.findall(r"INFO errorproxy: reloaded ", log)) == 19
        path = re.escape(str(proxy.config_path))
        # Every problem of the invalid file is logged at ERROR, with its path and value.
        assert re.search(rf"ERROR errorproxy: reload refused: {path}: routes\[0\]\.upstream: \"nowhere\"", log)
        assert re.search(rf"ERROR errorproxy: reload refused: {path}: routes\[0\]\.max_body_size: \"lots\"", log)
        async with probe.get(admin_url(proxy) + "/metrics") as response:
            metrics = await response.text()
        assert 'errorproxy_config_reloads_total{result="ok"} 19.0' in metrics
        assert 'errorproxy_config_reloads_total{result="invalid"} 1.0' in metrics


async def test_download_started_before_a_reload_ends_on_the_old_config(aiohttp_server, start_proxy):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a"))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url + "/download") as download:
            assert download.status == 200
            received = await download.content.readexactly(len(CHUNK))
            rewrite(proxy, two_upstreams(url_a, url_b, "b"))
            proxy.process.send_signal(signal.SIGHUP)
            await wait_for(lambda: answers(session, proxy.url + "/", "B"), "the reload to B")
            # The old config's connections stay open while its download runs.
            assert "closing the previous config's upstream connections" not in proxy.log()
            received += await download.read()
        assert received == CHUNK * CHUNKS
    await wait_for(lambda: log_has(proxy, "closing the previous config's upstream connections"),
                   "the old config closed once its download ended")


async def test_watcher_reloads_a_changed_file_without_a_signal(aiohttp_server, start_proxy):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a", top="watch_config: true"))
    async with aiohttp.ClientSession() as session:
        assert await answers(session, proxy.url + "/", "A")
        rewrite(proxy, two_upstreams(url_a, url_b, "b", top="watch_config: true"))
        await wait_for(lambda: answers(session, proxy.url + "/", "B"), "the watcher's reload", timeout=5)
        # A broken edit is refused like a broken SIGHUP: the last good config keeps serving.
        rewrite(proxy, INVALID.replace("listen:", "watch_config: true\nlisten:"))
        await wait_for(lambda: log_has(proxy, r"reload refused: \d+ problem"), "the broken edit refused")
        assert await answers(session, proxy.url + "/", "B")
    assert re.search(r"reloading the config \(.*proxy0\.yaml changed\)", proxy.log())


async def test_watcher_survives_files_that_once_stopped_it(aiohttp_server, start_proxy):
    """A 401-digit timeout (OverflowError) or 3,000 levels of nesting (RecursionError) used to end the watch."""
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a", top="watch_config: true"))
    huge_timeout = two_upstreams(url_a, url_b, "a", top="watch_config: true").replace(
        f"a: {url_a}", f"a: {{url: '{url_a}', connect_timeout: {'1' * 401}}}")
    deep = two_upstreams(url_a, url_b, "a", top="watch_config: true\nbrand: " + "[" * 3000 + "]" * 3000)
    async with aiohttp.ClientSession() as session:
        assert await answers(session, proxy.url + "/", "A")  # and the watcher has taken the file's signature
        for number, (bad, target) in enumerate([(huge_timeout, "B"), (deep, "A")], 1):
            rewrite(proxy, bad)
            await wait_for(lambda: log_has(proxy, r"reload refused: \d+ problem", number), f"bad file {number} refused")
            rewrite(proxy, two_upstreams(url_a, url_b, target.lower(), top="watch_config: true"))
            await wait_for(lambda: answers(session, proxy.url + "/", target), f"the valid edit after bad file {number}")
        async with session.get(admin_url(proxy) + "/metrics") as response:
            metrics = await response.text()
    log = proxy.log()
    assert re.search(r"ERROR errorproxy: reload refused: .*: upstreams\.a\.connect_timeout: 1111.* must be at most 720h", log)
    assert re.search(r"ERROR errorproxy: reload refused: .*: line \d+, column \d+: not valid YAML \(nested deeper", log)
    assert "Traceback" not in log
    assert 'errorproxy_config_reloads_total{result="invalid"} 2.0' in metrics
    assert 'errorproxy_config_reloads_total{result="ok"} 2.0' in metrics


async def test_watcher_is_off_by_default(aiohttp_server, start_proxy):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a"))
    async with aiohttp.ClientSession() as session:
        rewrite(proxy, two_upstreams(url_a, url_b, "b"))
        await asyncio.sleep(2.5)  # two and a half watch intervals
        assert await answers(session, proxy.url + "/", "A")
        proxy.process.send_signal(signal.SIGHUP)
        await wait_for(lambda: answers(session, proxy.url + "/", "B"), "the SIGHUP reload")


async def test_a_new_listen_address_needs_a_restart(aiohttp_server, start_proxy):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a"))
    moved = two_upstreams(url_a, url_b, "b").replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1")
    rewrite(proxy, moved)
    proxy.process.send_signal(signal.SIGHUP)
    async with aiohttp.ClientSession() as session:
        # The rest of the config applies; the old listener keeps serving it.
        await wait_for(lambda: answers(session, proxy.url + "/", "B"), "the reload to B")
    assert re.search(r"WARNING errorproxy: listen changed from 127\.0\.0\.1:0 to 127\.0\.0\.1:1: takes a restart",
                     proxy.log())


async def test_a_template_problem_refuses_the_reload(aiohttp_server, start_proxy, tmp_path):
    a, b = await upstream(aiohttp_server, "A"), await upstream(aiohttp_server, "B")
    url_a, url_b = str(a.make_url("")), str(b.make_url(""))
    proxy = await start_proxy(two_upstreams(url_a, url_b, "a"))
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "409.html").write_text("{% if %}broken")
    rewrite(proxy, two_upstreams(url_a, url_b, "b", top=f"templates_dir: {templates}"))
    proxy.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: log_has(proxy, r"ERROR errorproxy: reload refused: .*: template .*409\.html"),
                   "the template problem refused")
    async with aiohttp.ClientSession() as session:
        assert await answers(session, proxy.url + "/", "A")
