"""Shared fixtures: the proxy as a real subprocess, upstream servers on 127.0.0.1.

The proxy runs as `python -m proxy run` in its own process, so tests see what a
user sees (its sockets, its memory, its signals). Functional tests of the
request front run twice, once with aiohttp's C HTTP parser and once with the
pure-Python one (AIOHTTP_NO_EXTENSIONS=1): they disagree on some malformed
input. Modules whose tests lie past the request parser override the
`http_parser` fixture to run on the C parser only.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on ((?:https?://|unix:)\S+?)[ ,]")


def pytest_configure(config: pytest.Config) -> None:
    """The package's bytecode written once, before the first proxy starts: with PYTHONDONTWRITEBYTECODE
    set (as some CI images do), each of the suite's hundreds of proxies would compile it again."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(ROOT / "proxy", quiet=1)


@dataclass
class RunningProxy:
    url: str
    process: subprocess.Popen
    log_path: Path
    config_path: Path | None = None  # the file given as --config: rewrite it, then SIGHUP, to reload

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """Current resident memory of the proxy process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


def config_yaml(upstream_url: str, route: str = "", top: str = "", upstream: str = "") -> str:
    """A config with one upstream and one catch-all route; extra YAML lines may be added.

    `route` lines go into the route, `upstream` lines into the upstream and `top`
    lines at the top level, each as YAML text.
    """
    text = f"""
listen: 127.0.0.1:0
{textwrap.dedent(top).strip()}
upstreams:
  app:
    url: {upstream_url}
{textwrap.indent(textwrap.dedent(upstream).strip(), '    ')}
routes:
  - name: all
    match: {{path_prefix: /}}
    upstream: app
{textwrap.indent(textwrap.dedent(route).strip(), '    ')}
"""
    return text


@pytest.fixture(params=["c-parser", "py-parser"])
def http_parser(request) -> str:
    return request.param


@pytest.fixture
def start_proxy(tmp_path, http_parser) -> Callable[..., Awaitable[RunningProxy]]:
    """Start `python -m proxy run` with a YAML config; stopped at teardown."""
    started: list[RunningProxy] = []

    async def start(config: str, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> RunningProxy:
        index = len(started)
        config_path = tmp_path / f"proxy{index}.yaml"
        config_path.write_text(config)
        log_path = tmp_path / f"proxy{index}.log"
        # Every proxy gets its own admin port, so several can run side by side.
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "ERRORPROXY_ADMIN": "127.0.0.1:0", **(env or {})}
        full_env.pop("AIOHTTP_NO_EXTENSIONS", None)
        if http_parser == "py-parser":
            full_env["AIOHTTP_NO_EXTENSIONS"] = "1"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "proxy", "run", "--config", str(config_path), *args],
                stdout=log_file, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
            )
        proxy = RunningProxy(url="", process=process, log_path=log_path, config_path=config_path)
        started.append(proxy)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                proxy.url = match.group(1)
                return proxy
            if process.poll() is not None:
                raise AssertionError(f"proxy exited with {process.returncode}:\n{proxy.log()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"proxy did not start:\n{proxy.log()}")

    yield start
    for proxy in started:
        if proxy.process.poll() is None:
            proxy.process.send_signal(signal.SIGTERM)
            try:
                proxy.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.process.kill()
                proxy.process.wait()
        log = proxy.log()
        # A logged upstream body is one repr'd line; the proxy's own traceback starts a line.
        assert not any(line.startswith("Traceback (most recent call last)") for line in log.splitlines()), (
            f"the proxy logged a traceback:\n{log}"
        )


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 whose connections a test handles byte by byte."""

    server: asyncio.AbstractServer
    received: list[bytes]

    @property
    def url(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"


@pytest.fixture
async def raw_server():
    """`await raw_server(handler)`: handler(reader, writer) runs for each connection."""
    servers: list[asyncio.AbstractServer] = []

    async def start(handler) -> RawServer:
        received: list[bytes] = []

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        return RawServer(server, received)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers, up to and including the blank line."""
    return await reader.readuntil(b"\r\n\r\n")


async def capture_upstream(raw_server, response: bytes) -> tuple["RawServer", list[bytes]]:
    """A raw upstream that answers every connection's first request with `response`; the request
    heads it read, in the list returned beside it."""
    seen: list[bytes] = []

    async def upstream(reader, writer):
        seen.append(await read_request_head(reader))
        writer.write(response)
        await writer.drain()

    return await raw_server(upstream), seen


async def raw_exchange(port: int, data: bytes, *, timeout: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the peer closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free 127.0.0.1 port (tests/functional/redis_server.py), stopped at teardown.

    Without redis-server the test is skipped, except under CI (`CI` set), where
    .ci/run installs it and its absence is a failure.
    """
    from tests.functional.redis_server import RedisServer, redis_server_path

    binary = redis_server_path()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run installs it (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()
