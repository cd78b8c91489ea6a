"""What `errorproxy run` can do on the platform it runs on, and its signal handlers there.

Linux is where errorproxy runs in production; macOS and Windows run it as a
developer's gateway, with what their kernels and event loops offer:

    feature                      Linux    macOS    Windows
    run, check, demo, preview    yes      yes      yes
    stop and drain               SIGTERM, SIGINT   Ctrl+C (SIGINT), Ctrl+Break (SIGBREAK)
    reload                       SIGHUP or `watch_config: true`    `watch_config: true` (no SIGHUP)
    --workers N, N > 1           yes      no       no
    unix: listen and upstreams   yes      yes      no
    uvloop                       yes      where installed          no (asyncio's own loop)

`--workers` is Linux only: the workers share one port through SO_REUSEPORT,
which only Linux's kernel balances across processes; macOS and the BSDs hand
every connection to the last socket bound, and Windows has no such option.

>>> run_problems(Address("127.0.0.1", 8080), (), workers=4, platform="darwin")
['--workers 4: worker processes need Linux (SO_REUSEPORT spreads connections over them only there); on darwin errorproxy runs as one process (--workers 1)']
>>> run_problems(Address("127.0.0.1", 8080), (), workers=4, platform="linux")
[]
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Callable, Iterable

from yarl import URL

from ..core.settings import Address, UnixAddress

log = logging.getLogger("errorproxy")


def run_problems(listen: Address | UnixAddress, upstream_urls: Iterable[URL], *, workers: int = 1,
                 platform: str | None = None) -> list[str]:
    """What keeps `errorproxy run` from serving this config on `platform` (default: this one).

    A config is not at fault for them (`errorproxy check` on a laptop accepts a
    file written for Linux servers): they are refused when it is run.

    >>> run_problems(UnixAddress("/run/errorproxy.sock"), [URL("unix:/run/app.sock")], platform="win32")
    ['listen unix:/run/errorproxy.sock: Unix sockets are not available on Windows; listen on HOST:PORT', 'upstream unix:/run/app.sock: Unix sockets are not available on Windows']
    """
    platform = platform or sys.platform
    problems = []
    if workers > 1 and not platform.startswith("linux"):
        problems.append(f"--workers {workers}: worker processes need Linux (SO_REUSEPORT spreads connections "
                        f"over them only there); on {platform} errorproxy runs as one process (--workers 1)")
    if platform == "win32":
        if isinstance(listen, UnixAddress):
            problems.append(f"listen {listen}: Unix sockets are not available on Windows; listen on HOST:PORT")
        problems += [f"upstream {url}: Unix sockets are not available on Windows"
                     for url in upstream_urls if url.scheme == "unix"]
    return problems


def stop_signals() -> list[signal.Signals]:
    """The signals that stop errorproxy here: SIGTERM and SIGINT, and Ctrl+Break on Windows."""
    names = ("SIGTERM", "SIGINT", "SIGBREAK")
    return [getattr(signal, name) for name in names if hasattr(signal, name)]


def reload_signal() -> signal.Signals | None:
    """SIGHUP, or None where there is none (Windows): there `watch_config` is the way to reload."""
    return getattr(signal, "SIGHUP", None)


def install_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None],
                    reload: Callable[[], None] | None = None) -> Callable[[], None]:
    """Call `stop` on a stop signal and `reload` on SIGHUP, from the event loop; returns the undo.

    The loop's own signal handling is used where it has one. Windows' event
    loops have none (`add_signal_handler` raises NotImplementedError): there a
    plain `signal.signal` handler hands the call to the loop, which is woken by
    the signal (Python's wakeup fd), so Ctrl+C drains instead of raising
    KeyboardInterrupt through whatever is running. Call from the main thread.
    """
    wanted = [(signum, stop) for signum in stop_signals()]
    hup = reload_signal()
    if reload is not None:
        if hup is None:
            log.info("no SIGHUP on this platform: set `watch_config: true` to reload when the config file changes")
        else:
            wanted.append((hup, reload))
    undo: list[Callable[[], object]] = []
    for signum, action in wanted:
        try:
            loop.add_signal_handler(signum, action)
        except NotImplementedError:
            previous = signal.signal(signum, lambda _signum, _frame, action=action: loop.call_soon_threadsafe(action))
            undo.append(lambda signum=signum, previous=previous: signal.signal(signum, previous))
        else:
            undo.append(lambda signum=signum: loop.remove_signal_handler(signum))

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall
