"""`errorproxy run --workers N`: worker processes on one port, under a supervisor.

Which worker served a request is found the way an operator would find it: the
upstream sees the connection's source port, and /proc says which process owns
the socket with that local port. Nothing is added to proxied responses.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningProxy, config_yaml


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


WORKERS = ("--workers", "2")


async def upstream(aiohttp_server, name: str, ports: list[int] | None = None):
    """A service answering its name; `ports` collects the source port of each request's connection."""
    async def hello(request):
        if ports is not None:
            ports.append(request.transport.get_extra_info("peername")[1])
        return web.Response(text=name)

    async def slow(request):
        await asyncio.sleep(1.5)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    return await aiohttp_server(app)


async def started(proxy: RunningProxy, timeout: float = 30) -> list[int]:
    """Wait for the supervisor's line (every worker listens); the worker pids it names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"errorproxy listening on \S+ \(2 workers, pids (\d+) (\d+),", proxy.log())
        if match:
            return [int(match.group(1)), int(match.group(2))]
        assert proxy.process.poll() is None, proxy.log()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workers did not start:\n{proxy.log()}")


def workers_of(proxy: RunningProxy) -> set[int]:
    """The supervisor's live child processes."""
    pid = proxy.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children if _state(int(child)) not in (None, "Z")}


def _state(pid: int) -> str | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between the open and the read
        return None
    return re.search(r"^State:\s+(\S)", status, re.MULTILINE).group(1)


def owners(local_ports: set[int], pids: set[int]) -> dict[int, int]:
    """local port -> pid of the process (among `pids`) whose TCP socket has that local port."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in local_ports:
                inodes[fields[9]] = port
    found = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found[inodes[link[8:-1]]] = pid
    return found


async def get_all(url: str, count: int) -> list[str]:
    """`count` GETs, each on a new connection, so the kernel picks a worker for each."""
    bodies = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(count):
            async with session.get(url) as response:
                assert response.status == 200
                bodies.append(await response.text())
    return bodies


async def requests_total(proxy: RunningProxy) -> float:
    admin = re.search(r"admin listening on (http://\S+?)[ ,\n]", proxy.log()).group(1)
    async with aiohttp.ClientSession() as session:
        async with session.get(admin + "/metrics") as response:
            text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("errorproxy_requests_total{"))


async def eventually(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def test_two_workers_share_the_port_and_metrics_sum_them(aiohttp_server, start_proxy):
    ports: list[int] = []
    server = await upstream(aiohttp_server, "A", ports)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))), args=WORKERS)
    pids = await started(proxy)
    assert workers_of(proxy) == set(pids)
    assert await get_all(proxy.url + "/", 40) == ["A"] * 40
    served_by = owners(set(ports), set(pids))
    assert set(served_by) == set(ports), "every upstream connection belongs to a worker"
    assert set(served_by.values()) == set(pids), "both workers served requests"
    assert await requests_total(proxy) == 40
    # Each worker's lines carry its pid; the supervisor names the one port they share.
    for pid in pids:
        assert re.search(rf"errorproxy\[{pid}\]: worker {pid} listening on {re.escape(proxy.url)} ", proxy.log())


async def test_a_killed_worker_is_replaced_while_requests_succeed(aiohttp_server, start_proxy):
    ports: list[int] = []
    server = await upstream(aiohttp_server, "A", ports)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))), args=WORKERS)
    pids = await started(proxy)
    assert await get_all(proxy.url + "/", 10) == ["A"] * 10
    # A worker counts a request just after its last byte is sent: wait for the
    # counts to land before the kill, or one may die with the worker.
    for _ in range(100):
        if await requests_total(proxy) == 10:
            break
        await asyncio.sleep(0.05)
    victim, survivor = pids
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: _state(victim) in (None, "Z"), "the killed worker gone")
    # The kernel leaves the dead worker out at once: the survivor takes every new connection.
    assert await get_all(proxy.url + "/", 20) == ["A"] * 20
    await eventually(lambda: len(workers_of(proxy) - {survivor}) == 1, "a replacement worker")
    replacement = (workers_of(proxy) - {survivor}).pop()
    await eventually(lambda: re.search(rf"worker {replacement} listening on", proxy.log()), "the replacement listening")
    assert re.search(rf"worker \d \(pid {victim}\) exited with signal SIGKILL; restarting it in 0\.2s", proxy.log())
    ports.clear()
    assert await get_all(proxy.url + "/", 40) == ["A"] * 40
    assert set(owners(set(ports), {survivor, replacement}).values()) == {survivor, replacement}
    # The dead worker's counts stay in the sum, as a counter's must.
    assert await requests_total(proxy) == 70


async def test_sighup_reaches_every_worker(aiohttp_server, start_proxy):
    a = await upstream(aiohttp_server, "A")
    b = await upstream(aiohttp_server, "B")
    proxy = await start_proxy(config_yaml(str(a.make_url(""))), args=WORKERS)
    pids = await started(proxy)
    proxy.config_path.write_text(config_yaml(str(b.make_url(""))))
    proxy.process.send_signal(signal.SIGHUP)

    def reloaded() -> set[int]:
        return {int(pid) for pid in re.findall(r"errorproxy\[(\d+)\]: reloaded ", proxy.log())}

    await eventually(lambda: reloaded() == set(pids), "both workers reloaded")
    assert await get_all(proxy.url + "/", 20) == ["B"] * 20
    assert workers_of(proxy) == set(pids), "a reload restarts no worker"


async def test_sigterm_drains_the_workers_and_exits_0(aiohttp_server, start_proxy):
    server = await upstream(aiohttp_server, "A")
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="server: {shutdown_timeout: 10s}"),
                              args=WORKERS)
    pids = await started(proxy)
    metrics_dir = Path(Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"PROMETHEUS_MULTIPROC_DIR=")[1]
                       .split(b"\0")[0].decode())
    assert metrics_dir.is_dir()
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        in_flight = asyncio.ensure_future(client.get(proxy.url + "/slow"))
        await asyncio.sleep(0.5)
        proxy.process.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200 and await response.text() == "finished"
    assert await loop.run_in_executor(None, proxy.process.wait, 20) == 0
    assert all(_state(pid) is None for pid in pids)
    assert not metrics_dir.exists()
    assert "stopped 2 workers" in proxy.log()


async def test_a_worker_that_cannot_start_makes_the_supervisor_give_up(aiohttp_server, start_proxy):
    server = await upstream(aiohttp_server, "A")
    proxy = await start_proxy(config_yaml(str(server.make_url(""))), args=WORKERS)
    victim, survivor = await started(proxy)
    proxy.config_path.write_text("routes: [")  # a restarted worker now fails at once
    os.kill(victim, signal.SIGKILL)
    code = await asyncio.get_running_loop().run_in_executor(None, proxy.process.wait, 30)
    assert code == 1
    # A restarted worker reads the config file as it is now; this one cannot start, again and again.
    assert re.search(r"exited with status 1, 5 exits within 60s: a crash loop; giving up", proxy.log())
    assert _state(survivor) is None, "the other worker is stopped too"
