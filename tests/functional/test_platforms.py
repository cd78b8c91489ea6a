"""errorproxy on a developer's macOS or Windows machine, simulated on Linux.

A `sitecustomize` module on PYTHONPATH takes away what those platforms lack
before errorproxy is imported: for Windows, the `resource` module, fork,
SIGHUP, AF_UNIX, uvloop and the event loop's `add_signal_handler` (Windows'
loops raise NotImplementedError), with `sys.platform` set to "win32"; for macOS,
`sys.platform` "darwin" and no uvloop. Only the standard library is altered;
errorproxy runs as it is, as a real process, through its real command line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, config_yaml

WINDOWS = """
    import asyncio, asyncio.unix_events, functools, signal, socket, subprocess, sys
    # Modules that choose by sys.platform do so now, as on Linux: only errorproxy is under test.
    import aiohttp, aiohttp.web, sysconfig, zoneinfo
    sysconfig.get_config_vars()
    sys.modules["resource"] = None  # `import resource` raises ImportError
    sys.modules["uvloop"] = None
    import os, random  # random reseeds at fork where there is one: imported, it has chosen
    del os.fork, os.register_at_fork
    del signal.SIGHUP
    # No AF_UNIX; the event loop's self-pipe still needs a socket pair (Windows makes one over TCP).
    socket.socketpair = functools.partial(socket.socketpair, socket.AF_UNIX)
    del socket.AF_UNIX

    def _not_implemented(self, *args):
        raise NotImplementedError  # as Windows' event loops do

    asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _not_implemented
    asyncio.unix_events._UnixSelectorEventLoop.remove_signal_handler = _not_implemented
    sys.platform = "win32"
"""
MACOS = """
    import asyncio, subprocess, sys
    import aiohttp, aiohttp.web, sysconfig, zoneinfo
    sysconfig.get_config_vars()
    sys.modules["uvloop"] = None
    sys.platform = "darwin"
"""


# What this module tests lies past the request parser.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


def _simulated(tmp_path: Path, preamble: str) -> dict[str, str]:
    """An environment whose Python starts as the platform `preamble` describes."""
    folder = tmp_path / "platform"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(preamble))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORPROXY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return env


def _errorproxy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True,
                          timeout=30, env=env, cwd=ROOT)


@pytest.mark.parametrize("preamble", [WINDOWS, MACOS], ids=["windows", "macos"])
def test_every_module_imports(tmp_path, preamble):
    code = ("import pkgutil, importlib, proxy, sys; assert sys.platform in ('win32', 'darwin');"
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(proxy.__path__, 'proxy.')"
            " if m.name != 'proxy.__main__']")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=_simulated(tmp_path, preamble), cwd=ROOT)
    assert result.returncode == 0, result.stderr


async def test_windows_serves_reloads_on_a_file_change_and_stops_on_ctrl_c(tmp_path, start_proxy, aiohttp_server):
    async def hello(request):
        return aiohttp.web.Response(text="hello")

    app = aiohttp.web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app)
    config = config_yaml(str(server.make_url("")), top="watch_config: true")
    env = _simulated(tmp_path, WINDOWS)
    proxy = await start_proxy(config, env={**env, "ERRORPROXY_ADMIN": "127.0.0.1:0"})
    log = proxy.log()
    assert "asyncio event loop" in log  # no uvloop on Windows
    assert "no SIGHUP on this platform: set `watch_config: true`" in log
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url + "/") as response:
            assert response.status == 200 and await response.text() == "hello"

    # Reload: SIGHUP does not exist there; the watched file does it.
    assert proxy.config_path is not None
    proxy.config_path.write_text(config.replace("upstream: app", "upstream: app\n    strip_prefix: /x"))
    deadline = time.monotonic() + 10
    while "reloaded" not in proxy.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert "reloaded" in proxy.log(), proxy.log()

    # Ctrl+C: handled by the fallback signal handler, so a drain and a clean exit, no KeyboardInterrupt.
    proxy.process.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(proxy.process.wait, 15) == 0, proxy.log()
    assert "stopped" in proxy.log() and "KeyboardInterrupt" not in proxy.log()


@pytest.mark.parametrize(
    "preamble, platform",
    [pytest.param(WINDOWS, "win32", id="windows"), pytest.param(MACOS, "darwin", id="macos")],
)
def test_workers_are_refused_off_linux_with_the_reason(tmp_path, preamble, platform):
    path = tmp_path / "proxy.yaml"
    path.write_text(config_yaml("http://127.0.0.1:9"))
    result = _errorproxy(_simulated(tmp_path, preamble), "run", "--config", str(path), "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"errorproxy run: --workers 2: worker processes need Linux (SO_REUSEPORT spreads connections over them "
        f"only there); on {platform} errorproxy runs as one process (--workers 1)"]


def test_windows_refuses_unix_sockets_when_run_and_accepts_them_in_check(tmp_path):
    path = tmp_path / "proxy.yaml"
    path.write_text(config_yaml("unix:/run/app.sock").replace("listen: 127.0.0.1:0", "listen: unix:/run/ep.sock"))
    env = _simulated(tmp_path, WINDOWS)
    checked = _errorproxy(env, "check", "--config", str(path))
    assert checked.returncode == 0, checked.stderr  # a file for the Linux servers, checked on a laptop
    result = _errorproxy(env, "run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "errorproxy run: listen unix:/run/ep.sock: Unix sockets are not available on Windows; listen on HOST:PORT",
        "errorproxy run: upstream unix:/run/app.sock: Unix sockets are not available on Windows",
    ]
