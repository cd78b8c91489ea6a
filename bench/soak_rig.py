"""The processes of a soak: the upstream, errorproxy in front of it, and the upstream's kills and restarts.

Both listen on 127.0.0.1, on free ports, and are started through a `procs.Group`,
so each runs in its own process group and nothing outlives the harness. A
restart is SIGKILL (no goodbye to the connections it had open), `down` seconds
of nothing listening, then a fresh upstream on the same port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass

import aiohttp

from .procs import BenchError, Group, Process, free_port, wait_http
from .servers import ROOT, errorproxy_python

_CONFIG = """\
listen: 127.0.0.1:{port}
admin: 127.0.0.1:{admin_port}
access_log: off
server:
  shutdown_timeout: 2s
upstreams:
  app:
    url: http://127.0.0.1:{upstream_port}
    connect_timeout: 2s
    read_timeout: 15s  # under the client's 30 s, so a hung exchange shows as the proxy's 504
routes:
  - name: all
    match: {{path_prefix: /}}
    upstream: app
    intercept: [409, 500]
    format: json
    max_body_size: 8MiB
"""


@dataclass
class Rig:
    """The running processes and their ports; `upstream` is replaced at each restart."""

    group: Group
    python: str
    upstream: Process
    upstream_port: int
    proxy: Process
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start_upstream(self) -> Process:
        self.upstream = _start_upstream(self.group, self.python, self.upstream_port)
        return self.upstream


def _start_upstream(group: Group, python: str, port: int) -> Process:
    return group.start("upstream", [python, "-m", "bench.soak_upstream", "--port", str(port)], cwd=ROOT)


def start(group: Group, workers: int = 1) -> Rig:
    """The upstream, then errorproxy in front of it (`workers` processes), both answering."""
    python = errorproxy_python()
    upstream_port, port, admin_port = _distinct_ports(3)
    upstream = _start_upstream(group, python, upstream_port)
    wait_http(upstream, f"http://127.0.0.1:{upstream_port}/healthz")
    config = group.dir / "errorproxy.yaml"
    config.write_text(_CONFIG.format(port=port, admin_port=admin_port, upstream_port=upstream_port))
    argv = [python, "-m", "proxy", "run", "--config", str(config)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ERRORPROXY_")}
    env.update(PYTHONUNBUFFERED="1", ERRORPROXY_LOG_LEVEL="WARNING")
    proxy = group.start("errorproxy", argv, env=env, cwd=ROOT)
    wait_http(proxy, f"http://127.0.0.1:{admin_port}/readyz")
    return Rig(group, python, upstream, upstream_port, proxy, port, admin_port)


def _distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


async def restart_upstream(rig: Rig, admin: aiohttp.ClientSession, restarts: list[dict], origin: float,
                           deadline: float, every: float, down: float) -> None:
    """Every `every` seconds until `deadline`: kill the upstream, wait `down` seconds, start it again.

    Each restart is appended to `restarts` as it begins, as `{"down_at": t, "up_at": None}`
    with times since `origin`, and its `up_at` is set once the new upstream answers: the
    traffic judges its answers against this list while it grows.
    """
    if every <= 0:
        return
    while (at := origin + (len(restarts) + 1) * every) < deadline:
        await asyncio.sleep(at - time.monotonic())
        restart = {"down_at": round(time.monotonic() - origin, 3), "up_at": None}
        restarts.append(restart)
        old = rig.upstream
        os.killpg(old.pid, signal.SIGKILL)
        while old.popen.poll() is None:
            await asyncio.sleep(0.01)
        rig.group.stop(old)  # forgets the dead process
        await asyncio.sleep(down)
        await ready(admin, rig.start_upstream(), f"http://127.0.0.1:{rig.upstream_port}/healthz")
        restart["up_at"] = round(time.monotonic() - origin, 3)
        print(f"[{restart['down_at']:.0f} s] upstream killed, back after {restart['up_at'] - restart['down_at']:.2f} s",
              file=sys.stderr)


async def ready(session: aiohttp.ClientSession, process: Process, url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise BenchError(f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}")
        if await healthy(session, url):
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"{process.name} not ready at {url} within {timeout:g} s:\n{process.log_tail()}")


async def healthy(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
