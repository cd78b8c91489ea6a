"""Outlier detection: targets ejected after failing in a row (passive) or failing their health
check (active), re-admitted when they recover; /readyz reflecting it. Real 127.0.0.1 upstreams,
the proxy as a process."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import aiohttp
import pytest
import trustme
from aiohttp import web

from tests.conftest import config_yaml
from tests.functional.certs import ca_file, issue, serve, server_context
from tests.functional.test_observability import admin_url, labels, scrape, series
from tests.functional.test_resilience import _config


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


class Target:
    """An upstream whose answer to `/` and to `/health` can be changed while it runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.health = 200
        self.hits = 0  # requests other than health checks
        self.checks = 0

    def app(self) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            self.checks += 1
            return web.Response(status=self.health, text="health")

        async def handler(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(status=self.status, text=self.name)

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_route("*", "/{tail:.*}", handler)
        return app


async def _targets(aiohttp_server, *names: str) -> tuple[list[Target], list[str]]:
    targets = [Target(name) for name in names]
    urls = [f"http://127.0.0.1:{(await aiohttp_server(target.app())).port}" for target in targets]
    return targets, urls


async def _bodies(client: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    answers = []
    for _ in range(count):
        async with client.get(url) as response:
            answers.append(await response.text() if response.status == 200 else str(response.status))
    return answers


async def _until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def test_target_failing_in_a_row_is_ejected_then_readmitted(aiohttp_server, start_proxy):
    (a, b), urls = await _targets(aiohttp_server, "a", "b")
    a.status = 500
    proxy = await start_proxy(_config(*urls, upstream="eject_after: 3\neject_for: 1s\nmax_eject_for: 4s"))
    async with aiohttp.ClientSession() as client:
        # Round robin: a's third 500 in a row ejects it.
        assert await _bodies(client, proxy.url, 6) == ["500", "b"] * 3
        ejected_at = time.monotonic()
        assert await _bodies(client, proxy.url, 6) == ["b"] * 6
        assert time.monotonic() - ejected_at < 1.0, "too slow to test within the ejection"
        assert a.hits == 3

        a.status = 200  # a recovers; once its ejection is over, one request probes it and it is back
        await asyncio.sleep(ejected_at + 1.05 - time.monotonic())
        after = await _bodies(client, proxy.url, 6)
        samples = await scrape(client, await admin_url(proxy))
    assert Counter(after) == {"a": 3, "b": 3}
    assert series(samples, "errorproxy_upstream_ejections_total") == {labels(upstream="app", reason="failures"): 1.0}
    [line] = [line for line in proxy.log().splitlines() if " ejected for " in line]
    assert re.search(r"upstream app target http://127\.0\.0\.1:\d+ ejected for 1s: failed in a row, the last: 500 "
                     r"request_id=\w+", line)


async def test_failed_probe_doubles_the_ejection(aiohttp_server, start_proxy):
    (a, b), urls = await _targets(aiohttp_server, "a", "b")
    a.status = 503
    proxy = await start_proxy(_config(*urls, upstream="eject_after: 2\neject_for: 500ms\nmax_eject_for: 5s"))
    async with aiohttp.ClientSession() as client:
        assert await _bodies(client, proxy.url, 4) == ["503", "b"] * 2
        await asyncio.sleep(0.55)
        assert await _bodies(client, proxy.url, 2) == ["503", "b"]  # the probe fails: out for 1s now
        await asyncio.sleep(0.55)
        assert await _bodies(client, proxy.url, 4) == ["b"] * 4  # still out, where 500ms would be over
        assert a.hits == 3
    assert re.findall(r"ejected for (\S+):", proxy.log()) == ["0.5s", "1s"]


async def test_failing_health_check_ejects_and_passing_readmits(aiohttp_server, start_proxy):
    (a, b), urls = await _targets(aiohttp_server, "a", "b")
    a.health = 503
    check = "health_check: {path: /health, interval: 100ms, timeout: 500ms}"
    proxy = await start_proxy(_config(*urls, upstream=check))
    async with aiohttp.ClientSession() as client:
        await _bodies(client, proxy.url, 1)  # the upstream's first use starts its checks
        await _until(lambda: "failed its health check" in proxy.log(), "a's failed check logged")
        hits = a.hits
        assert await _bodies(client, proxy.url, 8) == ["b"] * 8
        assert a.hits == hits  # answering `/` fine, but out of rotation while /health fails

        a.health = 200
        await _until(lambda: "passed its health check" in proxy.log(), "a's passing check logged")
        assert Counter(await _bodies(client, proxy.url, 8)) == {"a": 4, "b": 4}
        samples = await scrape(client, await admin_url(proxy))
    assert a.checks >= 2 and b.checks >= 2  # each target its own checks
    assert series(samples, "errorproxy_upstream_ejections_total") == {
        labels(upstream="app", reason="health_check"): 1.0}
    assert re.search(r"upstream app target 127\.0\.0\.1:\d+ failed its health check \(GET /health: status 503\): "
                     r"out of rotation", proxy.log())


async def test_readiness_needs_a_target_not_ejected_in_each_upstream(aiohttp_server, start_proxy):
    (a, b), urls = await _targets(aiohttp_server, "a", "b")
    a.health = b.health = 500
    check = "health_check: {path: /health, interval: 100ms, timeout: 500ms}"
    proxy = await start_proxy("readiness: {check_upstreams: true}\n" + _config(*urls, upstream=check))
    admin = await admin_url(proxy)

    async def ready() -> tuple[int, str]:
        async with client.get(admin + "/readyz") as response:
            return response.status, await response.text()

    async with aiohttp.ClientSession() as client:
        # Both accept connections, but /readyz starts the checks, which both fail.
        deadline = time.monotonic() + 5
        while (answer := await ready())[0] == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        a_address, b_address = (url.removeprefix("http://") for url in urls)
        assert answer == (503, f"not ready: upstreams unreachable: app {a_address}: ejected; app {b_address}: ejected\n")

        b.health = 200  # one target back is enough
        deadline = time.monotonic() + 5
        while (answer := await ready())[0] == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert answer == (200, "ready\n")
        assert await _bodies(client, proxy.url, 4) == ["b"] * 4


@pytest.fixture
async def served():
    """`await served(app, ...)`: `certs.serve`, its runners cleaned up after the proxy has stopped."""
    runners = []

    async def start(app: web.Application, **options) -> str:
        runner, url = await serve(app, **options)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["https", "unix"])
async def test_health_checks_reach_tls_and_unix_socket_targets(tmp_path, served, start_proxy, transport):
    """A check is made as the pool connects: TLS with the upstream's CA for https://, the socket for unix:."""
    target = Target("t")
    target.health = 503
    if transport == "https":
        ca = trustme.CA()
        url = await served(target.app(), ssl_context=server_context(issue(ca, tmp_path, "upstream")))
        tls = f"tls: {{ca_file: {ca_file(ca, tmp_path)}}}"
    else:
        url = await served(target.app(), unix=tmp_path / "app.sock")
        tls = ""
    check = "health_check: {path: /health, interval: 100ms, timeout: 1s}"
    proxy = await start_proxy(config_yaml(url, upstream=f"{tls}\n{check}"))
    async with aiohttp.ClientSession() as client:
        assert await _bodies(client, proxy.url, 1) == ["t"]  # the upstream's first use starts its checks
        await _until(lambda: "failed its health check (GET /health: status 503)" in proxy.log(),
                     "the failed check logged")
        target.health = 200
        await _until(lambda: "passed its health check" in proxy.log(), "the passing check logged")
        assert await _bodies(client, proxy.url, 2) == ["t", "t"]
    where = str(tmp_path / "app.sock") if transport == "unix" else url.removeprefix("https://")
    assert f"target {where} failed its health check" in proxy.log()
    assert target.checks >= 2
