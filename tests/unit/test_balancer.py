"""Target selection, the ejection clock and the retry rule, on a hand-driven clock."""

from __future__ import annotations

import pytest
from yarl import URL

from proxy.upstream.balancer import Balancer, Outcome
from proxy.core.settings import UpstreamSettings

UNREACHABLE, CONNECTED, UNDECIDED = Outcome.UNREACHABLE, Outcome.CONNECTED, Outcome.UNDECIDED


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(targets: int, script: list[tuple], eject_for: float = 10) -> None:
    """Play `script` against a fresh balancer; each step is one of

    ("at", t)                     the clock reads t (it starts at 100)
    (outcome, index)              a try at target `index` came to `outcome`
    ("picks", [i, ...])           the next picks, each for a new request
    ("pick", tried, i)            the pick for a request that has tried `tried`
    ("ejected", [i, ...])         exactly these targets are skipped now
    """
    clock = Clock()
    balancer = Balancer(targets, eject_for=eject_for, clock=clock)
    for step in script:
        kind = step[0]
        if kind == "at":
            clock.now = step[1]
        elif isinstance(kind, Outcome):
            balancer.report(step[1], kind)
        elif kind == "picks":
            assert [balancer.pick() for _ in step[1]] == step[1], step
        elif kind == "pick":
            assert balancer.pick(step[1]) == step[2], step
        elif kind == "ejected":
            assert [i for i in range(targets) if balancer.ejected(i)] == step[1], step
        else:
            raise AssertionError(step)


@pytest.mark.parametrize("targets, script", [
    pytest.param(1, [("picks", [0, 0, 0])], id="one-target"),
    pytest.param(3, [("picks", [0, 1, 2, 0, 1, 2, 0])], id="three-targets-in-turn"),
    pytest.param(3, [("picks", [0]), (UNREACHABLE, 1), ("picks", [2, 0, 2, 0])],
                 id="ejected-target-skipped-others-alternate"),
    pytest.param(3, [(UNREACHABLE, 0), (UNREACHABLE, 2), ("picks", [1, 1, 1]), ("ejected", [0, 2])],
                 id="two-ejected-all-to-the-third"),
    pytest.param(3, [(CONNECTED, 1), (UNDECIDED, 2), ("picks", [0, 1, 2]), ("ejected", [])],
                 id="connected-and-undecided-eject-nothing"),
])
def test_round_robin(targets, script):
    _run(targets, script)


@pytest.mark.parametrize("script", [
    pytest.param([(UNREACHABLE, 1), ("at", 109.9), ("picks", [0, 2, 0]), ("ejected", [1])],
                 id="skipped-for-the-whole-cool-down"),
    pytest.param([("picks", [0]), (UNREACHABLE, 1), ("at", 110), ("picks", [1, 2, 0, 2, 0, 2]), ("ejected", [1])],
                 id="cool-down-over-one-probe-then-skipped-awaiting-its-verdict"),
    pytest.param([(UNREACHABLE, 1), ("at", 110), ("picks", [0, 1]), (CONNECTED, 1), ("picks", [2, 0, 1]),
                  ("ejected", [])],
                 id="probe-connects-target-readmitted"),
    pytest.param([(UNREACHABLE, 1), ("at", 110), ("picks", [0, 1]), ("at", 111), (UNREACHABLE, 1),
                  ("at", 120.9), ("picks", [2, 0, 2]), ("at", 121), ("picks", [0, 1])],
                 id="probe-fails-ejected-a-cool-down-from-the-failure"),
    pytest.param([(UNREACHABLE, 1), ("at", 110), ("picks", [0, 1]), ("at", 119.9), ("picks", [2, 0]),
                  ("at", 120), ("picks", [1, 2, 0])],
                 id="probe-without-verdict-probed-again-a-cool-down-later"),
    pytest.param([(UNREACHABLE, 1), ("at", 105), (CONNECTED, 1), ("picks", [0, 1, 2])],
                 id="connected-while-ejected-readmitted-at-once"),
])
def test_ejection_clock(script):
    _run(3, script)


@pytest.mark.parametrize("targets, script", [
    pytest.param(1, [(UNREACHABLE, 0), ("at", 101), ("picks", [0, 0]), ("ejected", [0])],
                 id="single-target-ejected-still-tried"),
    pytest.param(3, [(UNREACHABLE, 2), ("at", 101), (UNREACHABLE, 0), ("at", 102), (UNREACHABLE, 1),
                     ("picks", [2, 2]), ("ejected", [0, 1, 2])],
                 id="all-ejected-the-one-ending-first"),
    pytest.param(2, [(UNREACHABLE, 0), ("at", 101), (UNREACHABLE, 1), ("at", 103), (CONNECTED, 0),
                     ("picks", [0, 0]), ("ejected", [1])],
                 id="fallback-connects-readmitted"),
])
def test_every_target_ejected(targets, script):
    _run(targets, script)


@pytest.mark.parametrize("targets, script", [
    pytest.param(3, [("pick", [0], 1), ("pick", [0, 1], 2)], id="retries-go-to-untried-targets"),
    pytest.param(3, [("picks", [0]), ("pick", [1], 2), ("picks", [0])], id="tried-skipped-turn-moves-on"),
    pytest.param(3, [(UNREACHABLE, 2), ("pick", [0], 1), ("pick", [0, 1], 2)],
                 id="only-untried-one-is-ejected-still-tried"),
    pytest.param(2, [("pick", [0, 1], 0)], id="all-tried-all-candidates-again"),
])
def test_pick_after_tries(targets, script):
    _run(targets, script)


@pytest.mark.parametrize("outcome, tries, replayable, targets, retries, expected", [
    pytest.param(UNREACHABLE, 1, True, 3, 2, 0.05, id="first-retry-after-backoff"),
    pytest.param(UNREACHABLE, 2, True, 3, 2, 0.1, id="second-retry-doubles"),
    pytest.param(UNREACHABLE, 3, True, 4, 2, None, id="retries-spent"),
    pytest.param(UNREACHABLE, 3, True, 9, 5, 0.2, id="third-retry-doubles-again"),
    pytest.param(UNREACHABLE, 2, True, 2, 5, None, id="every-target-tried"),
    pytest.param(UNREACHABLE, 1, True, 1, 2, None, id="single-target-not-retried"),
    pytest.param(UNREACHABLE, 1, True, 3, 0, None, id="retries-off"),
    pytest.param(UNREACHABLE, 1, False, 3, 2, None, id="body-started-never-retried"),
    pytest.param(CONNECTED, 1, True, 3, 2, None, id="connected-then-failed-never-retried"),
    pytest.param(UNDECIDED, 1, True, 3, 2, None, id="pool-full-not-retried"),
])
def test_retry_delay(outcome, tries, replayable, targets, retries, expected):
    balancer = Balancer(targets, eject_for=10, retries=retries, backoff=0.05)
    assert balancer.retry_delay(outcome, tries, replayable) == expected


def test_from_settings_takes_the_upstream_values():
    clock = Clock()
    upstream = UpstreamSettings(
        name="app", url=URL("http://127.0.0.1:1"),
        targets=(URL("http://127.0.0.1:1"), URL("http://127.0.0.1:2")),
        eject_for=3, retries=1, retry_backoff=0.2,
    )
    balancer = Balancer.from_settings(upstream, clock)
    assert [balancer.pick(), balancer.pick()] == [0, 1]
    assert balancer.retry_delay(UNREACHABLE, 1, True) == 0.2
    assert balancer.retry_delay(UNREACHABLE, 2, True) is None
    balancer.report(0, UNREACHABLE)
    clock.now += 2.9
    assert balancer.ejected(0)
    clock.now += 0.1
    assert not balancer.ejected(0)
