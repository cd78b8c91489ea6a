"""Unix-domain sockets on both sides: an upstream at `unix:/PATH[:/base]`, and `listen: unix:/PATH`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ..conftest import ROOT, config_yaml
from .certs import run, serve


@pytest.fixture
def http_parser() -> str:
    return "c-parser"  # past the request parser: once is enough


@pytest.fixture
def short_dir():
    """A folder with a short path: a socket path must fit in 107 bytes, and tmp_path may not."""
    folder = Path(tempfile.mkdtemp(prefix="ep-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _app() -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str(f"echo {message.data}")
            return ws
        return web.json_response({"path": request.path_qs, "host": request.headers.get("Host"),
                                  "proto": request.headers.get("X-Forwarded-Proto")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def unix_upstream(short_dir):
    runner, url = await serve(_app(), unix=short_dir / "app.sock")
    yield url
    await runner.cleanup()


async def test_upstream_on_a_unix_socket_with_a_base_path(unix_upstream, start_proxy):
    proxy = await start_proxy(config_yaml(unix_upstream + ":/base"))
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(proxy.url + "/x?y=1") as response:
                assert response.status == 200
                assert await response.json() == {"path": "/base/x?y=1", "host": "localhost", "proto": "http"}
        async with session.ws_connect(proxy.url + "/live") as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo hi"


async def test_unix_upstream_that_is_not_there_is_a_502(short_dir, start_proxy):
    proxy = await start_proxy(config_yaml(f"unix:{short_dir}/nobody.sock"))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url + "/") as response:
            assert response.status == 502
            assert (await response.json())["status"] == 502


async def test_listener_on_a_unix_socket_with_its_mode(short_dir, unix_upstream, start_proxy):
    path = short_dir / "proxy.sock"
    proxy = await start_proxy(config_yaml(unix_upstream, top=f'listen_mode: "0600"').replace(
        "listen: 127.0.0.1:0", f"listen: unix:{path}"))
    assert proxy.url == f"unix:{path}"
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    status, out = await run("curl", "-sS", "--unix-socket", str(path), "http://localhost/a")
    assert (status, out) == (0, '{"path": "/a", "host": "localhost", "proto": "http"}')
    # A second proxy on the same socket is refused; the first one keeps it.
    second = subprocess.run([sys.executable, "-m", "proxy", "run", "--config", str(proxy.config_path)],
                            capture_output=True, text=True, timeout=20, cwd=ROOT,
                            env={**os.environ, "ERRORPROXY_ADMIN": "off"})
    assert second.returncode == 1
    assert f"cannot listen on unix:{path}: address already in use" in second.stderr
    status, _ = await run("curl", "-sS", "--unix-socket", str(path), "http://localhost/a")
    assert status == 0
    proxy.process.send_signal(signal.SIGTERM)
    proxy.process.wait(timeout=10)
    assert not path.exists(), "the socket file goes with the listener"


async def test_a_stale_socket_file_is_replaced(short_dir, unix_upstream, start_proxy):
    path = short_dir / "proxy.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a killed process leaves behind
    proxy = await start_proxy(config_yaml(unix_upstream).replace("listen: 127.0.0.1:0", f"listen: unix:{path}"))
    status, _ = await run("curl", "-sS", "--unix-socket", str(path), "http://localhost/")
    assert status == 0


def test_workers_need_a_tcp_listener(short_dir):
    config = short_dir / "proxy.yaml"
    config.write_text(config_yaml("http://127.0.0.1:9").replace("listen: 127.0.0.1:0", f"listen: unix:{short_dir}/p.sock"))
    result = subprocess.run([sys.executable, "-m", "proxy", "run", "--config", str(config), "--workers", "2"],
                            capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert result.returncode == 2
    assert "--workers 2 needs a TCP listen address" in result.stderr
