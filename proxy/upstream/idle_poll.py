"""Adaptive idle polling: a worker whose next bytes are due soon polls for them instead of sleeping.

A worker with nothing to do sleeps in epoll_wait, and the bytes that end the
wait (a client's next request, an upstream's answer) must wake it. On a
virtual machine that wake is dear: the idle CPU halted, the hypervisor must
bring it back, and it comes back with cold caches. Measured with `wrk -c1`
on a 2-core VM: errorproxy used about 120 µs of CPU a request (user and system),
and 65 µs with it, wrk and the upstream all pinned to one CPU, where no CPU
sleeps between them; the work is the same, the wakes are not.

So, as KVM's halt polling and Linux's cpuidle-haltpoll do for a CPU, the
loop keeps turning (polling its sockets with a zero timeout) for a while
after bytes arrive, and only then sleeps. How long adapts to the gaps seen
between arrivals, as haltpoll's window does: a gap the window missed but
the ceiling (`server.idle_poll`, 200 µs by default) would have caught
doubles it, a gap past the ceiling halves it, down to nothing. So a worker
in front of an upstream that answers in milliseconds soon stops polling;
one whose answers come back in tens of microseconds polls for them; a busy
worker, whose loop always has work, never polls at all. Measured with
`python bench/run.py --cases latency --workers 1` against the same with
`--idle-poll 0s`: the p50 added over a direct request fell from 0.112 ms to
0.046 ms, and the CPU a request from 119 µs to 112 µs (the polling costs
less than the cold wakes did).

Polling is off where it can only take: with one CPU usable (affinity, or a
cgroup quota under two CPUs), the upstream and the clients on the machine
need the CPU the poller would hold, and no other CPU sleeps to be woken.

Bytes from either side report here (`woke`, from both connections'
`data_received`); the poller is one per process, started by the server.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from pathlib import Path
from typing import Callable

GROW_START = 10e-6  # the window's first size, in seconds, once a gap shows polling would pay


class IdlePoll:
    """Keeps `loop` turning up to `window` seconds after bytes arrive; the window adapts to the
    gaps between arrivals, up to `ceiling`.

    >>> loop = asyncio.new_event_loop()
    >>> poll = IdlePoll(loop, ceiling=200e-6)
    >>> for gap in (50e-6, 50e-6, 50e-6, 50e-6, 50e-6):
    ...     poll.adapt(gap)
    >>> round(poll.window * 1e6)  # 10, 20, 40, 80: then the gaps fall inside it
    80
    >>> poll.adapt(1.0); round(poll.window * 1e6)  # a gap past the ceiling halves it
    40
    >>> loop.close()
    """

    __slots__ = ("_loop", "_ceiling", "_clock", "window", "_arrivals", "_seen", "_since", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop, ceiling: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._loop = loop
        self._ceiling = ceiling
        self._clock = clock
        self.window = 0.0  # how long the loop polls after the last arrival
        self._arrivals = 0  # reads reported so far
        self._seen = 0  # `_arrivals` as the last turn saw it
        self._since: float | None = None  # when the last turn that saw arrivals ran
        self._armed = False  # a turn is scheduled

    @property
    def polling(self) -> bool:
        """A turn is scheduled: the loop will not sleep before it runs."""
        return self._armed

    def woke(self) -> None:
        """Bytes arrived: a turn follows this one's work, and measures the gap since the last."""
        self._arrivals += 1
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._turn)

    def adapt(self, gap: float) -> None:
        """A gap of `gap` seconds between arrivals: widen the window to catch such gaps, if the ceiling
        allows, or narrow it for one past the ceiling."""
        window = self.window
        if gap <= window:
            return
        if gap <= self._ceiling:
            self.window = min(self._ceiling, max(GROW_START, 2 * window))
        elif window:
            self.window = window / 2 if window / 2 >= GROW_START else 0.0

    def _turn(self) -> None:
        now = self._clock()
        if self._arrivals != self._seen:
            self._seen = self._arrivals
            if self._since is not None:
                self.adapt(now - self._since)
            self._since = now
        if now - self._since < self.window:  # type: ignore[operator]  # set above on the first turn
            self._loop.call_soon(self._turn)  # with a callback ready, the loop polls without sleeping
        else:
            self._armed = False


_poll: IdlePoll | None = None  # this process's, while its server runs


def woke() -> None:
    """Bytes arrived from a client or an upstream (both connections' `data_received` call this)."""
    if _poll is not None:
        _poll.woke()


def start(loop: asyncio.AbstractEventLoop, ceiling: float) -> bool:
    """Poll on `loop` up to `ceiling` seconds after arrivals, where it pays; whether it will."""
    global _poll
    if ceiling <= 0 or usable_cpus() < 2:
        _poll = None
        return False
    _poll = IdlePoll(loop, ceiling)
    return True


def stop() -> None:
    """No more polling: the server stopped. A turn already scheduled runs once and ends."""
    global _poll
    if _poll is not None:
        _poll.window = 0.0
    _poll = None


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs this process may run on at once: its affinity, capped by its cgroup's (v2) CPU quota.

    `cpu.max` is `QUOTA PERIOD` (or `max PERIOD`): a container limited to 1.5 CPUs has 2 by this
    count, one limited to half a CPU has 1. The cgroup is the one /proc/self/cgroup names, or, in a
    container that sees its own cgroup at the mount's root (no cgroup namespace), the root's.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    try:
        group = next(line[3:] for line in proc_cgroup.read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return cpus  # no cgroup v2: the affinity stands
    for directory in (cgroup_root / group.strip().lstrip("/"), cgroup_root):
        try:
            quota, period = (directory / "cpu.max").read_text().split()
        except (OSError, ValueError):
            continue  # not there (a host's root cgroup has none), or unreadable
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period):
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
        break
    return cpus
