"""Idle polling: the window's adaptation to the gaps between arrivals, the turns it keeps a real event
loop making, and the CPUs counted usable (affinity, cgroup quota)."""

from __future__ import annotations

import asyncio
import os

import pytest

from proxy.upstream import idle_poll
from proxy.upstream.idle_poll import IdlePoll

US = 1e-6


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.parametrize(("gaps", "windows"), [
    pytest.param([50, 50, 50, 50, 50, 50], [10, 20, 40, 80, 80, 80], id="short-gaps-open-it-until-caught"),
    pytest.param([150, 150, 150, 150, 150, 150], [10, 20, 40, 80, 160, 160], id="doubles-to-catch-150"),
    pytest.param([190] * 7, [10, 20, 40, 80, 160, 200, 200], id="never-past-the-ceiling"),
    pytest.param([5000, 5000], [0, 0], id="slow-answers-keep-it-shut"),
    pytest.param([50, 50, 50, 50, 5000, 5000, 5000, 5000], [10, 20, 40, 80, 40, 20, 10, 0], id="halves-to-shut"),
    pytest.param([50, 50, 50, 5000, 50], [10, 20, 40, 20, 40], id="one-slow-gap-halves-it-a-short-one-doubles-it"),
    pytest.param([200, 201], [10, 0], id="past-the-ceiling-under-twice-the-start-shuts-it"),
])
def test_window_adapts_to_the_gaps(loop, gaps, windows):
    poll = IdlePoll(loop, ceiling=200 * US)
    seen = []
    for gap in gaps:
        poll.adapt(gap * US)
        seen.append(round(poll.window / US))
    assert seen == windows


class SteppingClock:
    """A clock that moves on `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.now += self.step
        self.reads += 1
        return self.now


def _run_idle(loop: asyncio.AbstractEventLoop, seconds: float = 0.01) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def _poll_out(loop: asyncio.AbstractEventLoop, poll: IdlePoll) -> None:
    """Run `loop` until `poll` lets it sleep."""
    for _ in range(100_000):
        if not poll.polling:
            return
        loop.run_until_complete(asyncio.sleep(0))
    raise AssertionError("still polling")


def test_the_loop_polls_for_the_window_then_sleeps(loop):
    clock = SteppingClock(1 * US)  # a turn reads it once: each turn is 1 µs on this clock
    poll = IdlePoll(loop, ceiling=200 * US, clock=clock)
    poll.window = 50 * US
    poll.woke()
    assert poll.polling
    _poll_out(loop, poll)
    assert 50 <= clock.reads <= 52  # a turn a microsecond for 50 µs, then none: the loop sleeps
    reads = clock.reads
    _run_idle(loop)
    assert clock.reads == reads
    poll.woke()  # the next arrival starts polling again
    _poll_out(loop, poll)
    assert clock.reads > reads + 40


def test_a_shut_window_takes_one_turn_an_arrival(loop):
    clock = SteppingClock(1.0)  # every gap is a second: past any ceiling
    poll = IdlePoll(loop, ceiling=200 * US, clock=clock)
    for expected in (1, 2, 3):
        poll.woke()
        poll.woke()  # a second read in the same turn schedules nothing more
        _poll_out(loop, poll)
        assert clock.reads == expected
    assert poll.window == 0


def test_arrivals_a_few_turns_apart_open_the_window(loop):
    clock = SteppingClock(1 * US)  # counts turns: each arrival comes once the last poll ran out
    poll = IdlePoll(loop, ceiling=200 * US, clock=clock)
    windows = []
    for _ in range(4):
        poll.woke()
        _poll_out(loop, poll)
        windows.append(round(poll.window / US))
    assert windows == [0, 10, 20, 40]  # each gap was just past the window of the moment


def test_stop_ends_a_poll_under_way(loop, monkeypatch):
    clock = SteppingClock(0.0)  # time stands still: the window never runs out by itself
    poll = IdlePoll(loop, ceiling=200 * US, clock=clock)
    poll.window = 50 * US
    monkeypatch.setattr(idle_poll, "_poll", poll)  # as `start` would, on a loop of the test's
    idle_poll.woke()
    loop.run_until_complete(asyncio.sleep(0))
    idle_poll.stop()
    reads = clock.reads
    _run_idle(loop, 0.01)
    assert clock.reads <= reads + 1  # the turn already scheduled ran once and ended
    assert idle_poll._poll is None
    idle_poll.woke()  # with no poller, a read is nothing


def test_start_is_off_at_a_ceiling_of_zero(loop):
    assert idle_poll.start(loop, 0.0) is False
    assert idle_poll._poll is None


def _cgroup(tmp_path, cpu_max: str | None, group: str = "/app.slice/proxy.scope"):
    proc = tmp_path / "cgroup"
    proc.write_text(f"0::{group}\n")
    directory = tmp_path / "fs" / group.lstrip("/")
    directory.mkdir(parents=True)
    if cpu_max is not None:
        (directory / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path / "fs", proc


AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize(("cpu_max", "expected"), [
    pytest.param("max 100000", AFFINITY, id="no-quota"),
    pytest.param("50000 100000", 1, id="half-a-cpu"),
    pytest.param("100000 100000", 1, id="one-cpu"),
    pytest.param("150000 100000", min(AFFINITY, 2), id="one-and-a-half-count-as-two"),
    pytest.param("1000000 100000", AFFINITY, id="a-quota-past-the-affinity"),
    pytest.param(None, AFFINITY, id="no-cpu-max-file"),
    pytest.param("garbage", AFFINITY, id="unreadable"),
])
def test_usable_cpus_reads_the_cgroup_quota(tmp_path, cpu_max, expected):
    root, proc = _cgroup(tmp_path, cpu_max)
    assert idle_poll.usable_cpus(root, proc) == expected


def test_usable_cpus_without_cgroup_v2(tmp_path):
    (tmp_path / "cgroup").write_text("12:cpu,cpuacct:/\n")  # cgroup v1 only: no "0::" line
    assert idle_poll.usable_cpus(tmp_path, tmp_path / "cgroup") == AFFINITY


def test_usable_cpus_reads_the_root_quota_of_a_container_without_a_cgroup_namespace(tmp_path):
    """/proc/self/cgroup names the host's path for the container, which its mount shows as the root."""
    (tmp_path / "cgroup").write_text("0::/system.slice/docker-1234.scope\n")
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "cpu.max").write_text("50000 100000\n")
    assert idle_poll.usable_cpus(tmp_path / "fs", tmp_path / "cgroup") == 1
