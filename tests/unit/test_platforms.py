"""Which platform runs what (`ops.platforms`), and the signal handlers' fallback where the loop has none."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from yarl import URL

from proxy.core.settings import Address, UnixAddress
from proxy.ops.platforms import install_signals, reload_signal, run_problems, stop_signals

TCP = Address("127.0.0.1", 8080)
UNIX_UPSTREAM = URL("unix:/run/app.sock")
WORKERS_OFF_LINUX = ("--workers 2: worker processes need Linux (SO_REUSEPORT spreads connections over them only "
                     "there); on {} errorproxy runs as one process (--workers 1)")


@pytest.mark.parametrize(
    "platform, listen, upstreams, workers, problems",
    [
        pytest.param("linux", TCP, [UNIX_UPSTREAM], 8, [], id="linux-everything"),
        pytest.param("darwin", UnixAddress("/tmp/ep.sock"), [UNIX_UPSTREAM], 1, [], id="macos-one-process"),
        pytest.param("darwin", TCP, [], 2, [WORKERS_OFF_LINUX.format("darwin")], id="macos-workers"),
        pytest.param("freebsd14", TCP, [], 2, [WORKERS_OFF_LINUX.format("freebsd14")], id="bsd-workers"),
        pytest.param("win32", TCP, [URL("http://127.0.0.1:3000")], 1, [], id="windows-tcp"),
        pytest.param("win32", TCP, [], 2, [WORKERS_OFF_LINUX.format("win32")], id="windows-workers"),
        pytest.param("win32", UnixAddress("/tmp/ep.sock"), [UNIX_UPSTREAM], 1, [
            "listen unix:/tmp/ep.sock: Unix sockets are not available on Windows; listen on HOST:PORT",
            "upstream unix:/run/app.sock: Unix sockets are not available on Windows",
        ], id="windows-unix-sockets"),
    ],
)
def test_run_problems(platform, listen, upstreams, workers, problems):
    assert run_problems(listen, upstreams, workers=workers, platform=platform) == problems


def test_run_problems_default_to_this_platform(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert run_problems(TCP, [], workers=2) == [WORKERS_OFF_LINUX.format("darwin")]
    monkeypatch.setattr(sys, "platform", "linux")
    assert run_problems(TCP, [], workers=2) == []


def test_signals_without_sighup_or_sigbreak(monkeypatch):
    monkeypatch.delattr(signal, "SIGHUP")
    assert reload_signal() is None
    assert stop_signals() == [signal.SIGTERM, signal.SIGINT]
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR2, raising=False)  # Windows' Ctrl+Break, by another number
    assert stop_signals() == [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2]


async def test_the_loop_handles_signals_where_it_can():
    loop = asyncio.get_running_loop()
    stopped, reloaded = asyncio.Event(), asyncio.Event()
    uninstall = install_signals(loop, stopped.set, reloaded.set)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(reloaded.wait(), 5)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(stopped.wait(), 5)
    finally:
        uninstall()
    assert loop.remove_signal_handler(signal.SIGINT) is False  # removed already


async def test_a_loop_without_signal_handling_gets_plain_handlers(monkeypatch, caplog):
    # Windows' event loops raise NotImplementedError from add_signal_handler.
    loop = asyncio.get_running_loop()

    def not_implemented(*args):
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", not_implemented)
    monkeypatch.delattr(signal, "SIGHUP")
    before = signal.getsignal(signal.SIGINT)
    stopped, reloaded = asyncio.Event(), asyncio.Event()
    with caplog.at_level("INFO", logger="errorproxy"):
        uninstall = install_signals(loop, stopped.set, reloaded.set)
    try:
        assert "no SIGHUP on this platform: set `watch_config: true`" in caplog.text
        assert signal.getsignal(signal.SIGINT) is not before
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C: the loop's stop, not KeyboardInterrupt
        await asyncio.wait_for(stopped.wait(), 5)
        assert not reloaded.is_set()
    finally:
        uninstall()
    assert signal.getsignal(signal.SIGINT) is before
