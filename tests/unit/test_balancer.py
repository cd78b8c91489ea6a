"""Target selection, ejection (unreachable, failing in a row, health checks), its doubling, and
the retry rule, on a hand-driven clock."""

from __future__ import annotations

import pytest
from yarl import URL

from proxy.core.settings import UpstreamSettings
from proxy.upstream.balancer import Balancer, Outcome

UNREACHABLE, ANSWERED, FAILED, UNDECIDED = Outcome.UNREACHABLE, Outcome.ANSWERED, Outcome.FAILED, Outcome.UNDECIDED


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(targets: int, script: list[tuple], eject_for: float = 10, **options) -> None:
    """Play `script` against a fresh balancer; each step is one of

    ("at", t)                     the clock reads t (it starts at 100)
    (outcome, index)              a try at target `index` came to `outcome` (and ejected nothing)
    (outcome, index, seconds)     ... and ejected it for `seconds`
    ("health", index, ok)         a health check of target `index` passed (True) or failed
    ("picks", [i, ...])           the next picks, each for a new request
    ("pick", tried, i)            the pick for a request that has tried `tried`
    ("ejected", [i, ...])         exactly these targets are skipped now
    """
    clock = Clock()
    balancer = Balancer(targets, eject_for=eject_for, clock=clock, **options)
    for step in script:
        kind = step[0]
        if kind == "at":
            clock.now = step[1]
        elif isinstance(kind, Outcome):
            expected = step[2] if len(step) > 2 else None
            assert balancer.report(step[1], kind) == expected, step
        elif kind == "health":
            balancer.mark(step[1], step[2])
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
    pytest.param(3, [("picks", [0]), (UNREACHABLE, 1, 10), ("picks", [2, 0, 2, 0])],
                 id="ejected-target-skipped-others-alternate"),
    pytest.param(3, [(UNREACHABLE, 0, 10), (UNREACHABLE, 2, 10), ("picks", [1, 1, 1]), ("ejected", [0, 2])],
                 id="two-ejected-all-to-the-third"),
    pytest.param(3, [(ANSWERED, 1), (FAILED, 0), (UNDECIDED, 2), ("picks", [0, 1, 2]), ("ejected", [])],
                 id="answered-one-failure-and-undecided-eject-nothing"),
])
def test_round_robin(targets, script):
    _run(targets, script)


@pytest.mark.parametrize("script", [
    pytest.param([(UNREACHABLE, 1, 10), ("at", 109.9), ("picks", [0, 2, 0]), ("ejected", [1])],
                 id="skipped-for-the-whole-cool-down"),
    pytest.param([("picks", [0]), (UNREACHABLE, 1, 10), ("at", 110), ("picks", [1, 2, 0, 2, 0, 2]),
                  ("ejected", [1])],
                 id="cool-down-over-one-probe-then-skipped-awaiting-its-verdict"),
    pytest.param([(UNREACHABLE, 1, 10), ("at", 110), ("picks", [0, 1]), (ANSWERED, 1), ("picks", [2, 0, 1]),
                  ("ejected", [])],
                 id="probe-answered-target-readmitted"),
    pytest.param([(UNREACHABLE, 1, 10), ("at", 110), ("picks", [0, 1]), ("at", 111), (UNREACHABLE, 1, 20),
                  ("at", 130.9), ("picks", [2, 0, 2]), ("at", 131), ("picks", [0, 1])],
                 id="probe-fails-ejected-twice-as-long-from-the-failure"),
    pytest.param([(UNREACHABLE, 1, 10), ("at", 110), ("picks", [0, 1]), ("at", 119.9), ("picks", [2, 0]),
                  ("at", 120), ("picks", [1, 2, 0])],
                 id="probe-without-verdict-probed-again-a-cool-down-later"),
    pytest.param([(UNREACHABLE, 1, 10), ("at", 105), (ANSWERED, 1), ("picks", [0, 1, 2])],
                 id="answered-while-ejected-readmitted-at-once"),
    pytest.param([(UNREACHABLE, 1, 10), ("at", 105), (UNREACHABLE, 1), (FAILED, 1), ("at", 110), ("ejected", [])],
                 id="failures-of-tries-begun-before-the-ejection-do-not-extend-it"),
])
def test_ejection_clock(script):
    _run(3, script, max_eject_for=60)


@pytest.mark.parametrize("script", [
    pytest.param([(FAILED, 0), (FAILED, 0), ("ejected", []), (FAILED, 0, 10), ("ejected", [0]), ("picks", [1, 1])],
                 id="third-failure-in-a-row-ejects"),
    pytest.param([(FAILED, 0), (FAILED, 0), (ANSWERED, 0), (FAILED, 0), (FAILED, 0), ("ejected", [])],
                 id="an-answer-between-starts-the-count-again"),
    pytest.param([(FAILED, 0), (FAILED, 1), (FAILED, 0), (FAILED, 1), ("ejected", [])],
                 id="counted-per-target"),
    pytest.param([(FAILED, 0), (FAILED, 0), (FAILED, 0, 10), ("at", 110), ("pick", [1], 0), (FAILED, 0, 20),
                  ("at", 130), ("pick", [1], 0), (FAILED, 0, 40), ("at", 170), ("pick", [1], 0), (FAILED, 0, 60),
                  ("at", 230), ("pick", [1], 0), (FAILED, 0, 60)],
                 id="each-failed-probe-doubles-the-ejection-up-to-max_eject_for"),
    pytest.param([(FAILED, 0), (FAILED, 0), (FAILED, 0, 10), ("at", 110), ("pick", [1], 0), (FAILED, 0, 20),
                  ("at", 130), ("pick", [1], 0), (ANSWERED, 0), (FAILED, 0), (FAILED, 0), (FAILED, 0, 10)],
                 id="an-answer-resets-the-doubling"),
    pytest.param([(UNREACHABLE, 0, 10), ("at", 110), ("pick", [1], 0), (FAILED, 0), ("ejected", [0]), ("at", 120),
                  ("ejected", []), ("pick", [1], 0), (UNREACHABLE, 0, 20)],
                 id="a-failed-probe-below-the-count-keeps-the-doubling"),
])
def test_consecutive_failures_eject(script):
    _run(2, script, eject_after=3, max_eject_for=60)


def test_failures_never_eject_when_eject_after_is_zero():
    _run(2, [*[(FAILED, 0)] * 50, ("ejected", []), (UNREACHABLE, 0, 10)], eject_after=0)


@pytest.mark.parametrize("script", [
    pytest.param([("health", 1, False), ("picks", [0, 2, 0, 2]), ("ejected", [1])],
                 id="failed-check-takes-the-target-out"),
    pytest.param([("health", 1, False), ("at", 1000), ("picks", [0, 2, 0]), ("ejected", [1])],
                 id="no-probe-by-traffic-however-long"),
    pytest.param([("health", 1, False), ("health", 1, True), ("picks", [0, 1, 2]), ("ejected", [])],
                 id="passed-check-puts-it-back"),
    pytest.param([(UNREACHABLE, 1, 10), ("health", 1, True), ("picks", [0, 1, 2]), ("ejected", [])],
                 id="passed-check-ends-an-ejection-by-traffic"),
    pytest.param([("health", 0, False), ("health", 1, False), ("health", 2, False), ("picks", [0, 0]),
                  ("ejected", [0, 1, 2])],
                 id="all-failing-one-is-still-tried"),
    pytest.param([("health", 0, False), ("health", 1, False), (UNREACHABLE, 2, 10), ("at", 101), ("picks", [2, 2])],
                 id="all-out-an-ejected-one-before-a-failing-one"),
])
def test_health_checks(script):
    _run(3, script)


@pytest.mark.parametrize("targets, script", [
    pytest.param(1, [(UNREACHABLE, 0, 10), ("at", 101), ("picks", [0, 0]), ("ejected", [0])],
                 id="single-target-ejected-still-tried"),
    pytest.param(3, [(UNREACHABLE, 2, 10), ("at", 101), (UNREACHABLE, 0, 10), ("at", 102), (UNREACHABLE, 1, 10),
                     ("picks", [2, 2]), ("ejected", [0, 1, 2])],
                 id="all-ejected-the-one-ending-first"),
    pytest.param(2, [(UNREACHABLE, 0, 10), ("at", 101), (UNREACHABLE, 1, 10), ("at", 103), (ANSWERED, 0),
                     ("picks", [0, 0]), ("ejected", [1])],
                 id="fallback-answered-readmitted"),
])
def test_every_target_ejected(targets, script):
    _run(targets, script)


@pytest.mark.parametrize("targets, script", [
    pytest.param(3, [("pick", [0], 1), ("pick", [0, 1], 2)], id="retries-go-to-untried-targets"),
    pytest.param(3, [("picks", [0]), ("pick", [1], 2), ("picks", [0])], id="tried-skipped-turn-moves-on"),
    pytest.param(3, [(UNREACHABLE, 2, 10), ("pick", [0], 1), ("pick", [0, 1], 2)],
                 id="only-untried-one-is-ejected-still-tried"),
    pytest.param(2, [("pick", [0, 1], 0)], id="all-tried-all-candidates-again"),
    pytest.param(1, [("pick", [0], 0), ("pick", [0, 0], 0)], id="single-target-tried-again"),
])
def test_pick_after_tries(targets, script):
    _run(targets, script)


ALL = ("connect", "reset", "502", "503", "504")


@pytest.mark.parametrize("reason, tries, idempotent, started, targets, retries, retry_on, expected", [
    pytest.param("connect", 1, True, False, 3, 2, ALL, 0.05, id="first-retry-after-backoff"),
    pytest.param("connect", 2, True, False, 3, 2, ALL, 0.1, id="second-retry-doubles"),
    pytest.param("connect", 3, True, False, 4, 2, ALL, None, id="retries-spent"),
    pytest.param("connect", 3, True, False, 9, 5, ALL, 0.2, id="third-retry-doubles-again"),
    pytest.param("connect", 2, True, False, 2, 5, ALL, None, id="connect-every-target-tried"),
    pytest.param("connect", 1, True, False, 1, 2, ALL, None, id="connect-single-target-not-retried"),
    pytest.param("connect", 1, True, False, 3, 0, ALL, None, id="retries-off"),
    pytest.param("connect", 1, False, False, 3, 2, ALL, 0.05, id="connect-any-method-nothing-was-sent"),
    pytest.param("connect", 1, False, True, 3, 2, ALL, None, id="connect-body-started-never-retried"),
    pytest.param("connect", 1, True, False, 3, 2, (), None, id="connect-not-in-retry_on"),
    pytest.param("reset", 1, True, False, 3, 2, ALL, 0.05, id="reset-idempotent"),
    pytest.param("reset", 1, False, False, 3, 2, ALL, None, id="reset-not-idempotent-or-a-body"),
    pytest.param("reset", 1, True, False, 3, 2, ("connect",), None, id="reset-default-retry_on"),
    pytest.param("503", 1, True, False, 3, 2, ALL, 0.05, id="503-idempotent"),
    pytest.param("503", 1, False, False, 3, 2, ALL, None, id="503-post-not-retried"),
    pytest.param("503", 2, True, False, 1, 2, ALL, 0.1, id="503-single-target-tried-again"),
    pytest.param("503", 3, True, False, 3, 2, ALL, None, id="503-retries-spent"),
    pytest.param("502", 1, True, False, 3, 2, ("connect", "503"), None, id="502-not-named"),
    pytest.param(None, 1, True, False, 3, 2, ALL, None, id="nothing-retry_on-names"),
])
def test_retry_delay(reason, tries, idempotent, started, targets, retries, retry_on, expected):
    balancer = Balancer(targets, eject_for=10, retries=retries, backoff=0.05, retry_on=retry_on)
    assert balancer.retry_delay(reason, tries, idempotent=idempotent, body_started=started) == expected


def test_from_settings_takes_the_upstream_values():
    clock = Clock()
    upstream = UpstreamSettings(
        name="app", url=URL("http://127.0.0.1:1"),
        targets=(URL("http://127.0.0.1:1"), URL("http://127.0.0.1:2")),
        eject_for=3, max_eject_for=5, eject_after=2, retries=1, retry_backoff=0.2,
        retry_on=frozenset({"connect", "503"}),
    )
    balancer = Balancer.from_settings(upstream, clock)
    assert [balancer.pick(), balancer.pick()] == [0, 1]
    assert balancer.retry_delay("connect", 1, idempotent=True, body_started=False) == 0.2
    assert balancer.retry_delay("503", 1, idempotent=True, body_started=False) == 0.2
    assert balancer.retry_delay("504", 1, idempotent=True, body_started=False) is None
    assert balancer.retry_delay("connect", 2, idempotent=True, body_started=False) is None
    assert balancer.report(0, UNREACHABLE) == 3
    clock.now += 2.9
    assert balancer.ejected(0)
    clock.now += 0.1
    assert not balancer.ejected(0)
    assert balancer.pick() == 0  # the probe
    assert balancer.report(0, UNREACHABLE) == 5  # doubled, capped
    assert [balancer.report(1, FAILED), balancer.report(1, FAILED)] == [None, 3]


def test_default_settings_keep_todays_retry_rule():
    """Without the new keys: connect failures only, two retries, and answers never eject (eject_after: 0)."""
    upstream = UpstreamSettings(name="app", url=URL("http://127.0.0.1:1"),
                                targets=(URL("http://127.0.0.1:1"), URL("http://127.0.0.1:2"), URL("http://127.0.0.1:3")))
    balancer = Balancer.from_settings(upstream, Clock())
    assert balancer.retry_delay("connect", 1, idempotent=False, body_started=False) == 0.05
    assert all(balancer.retry_delay(reason, 1, idempotent=True, body_started=False) is None
               for reason in ("reset", "502", "503", "504"))
    assert [balancer.report(0, FAILED) for _ in range(50)] == [None] * 50
