"""The retry budget's sliding window and the breaker's caps, on a hand-driven clock."""

from __future__ import annotations

import pytest

from proxy.upstream.limits import Breaker, RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _play(budget_args: dict, script: list[tuple]) -> None:
    """Each step: ("at", t) the clock reads 1000 + t; ("requests", n) n requests;
    ("spend", [bool, ...]) what the next spends answer."""
    clock = Clock()
    budget = RetryBudget(**budget_args, clock=clock)
    for step in script:
        if step[0] == "at":
            clock.now = 1000.0 + step[1]
        elif step[0] == "requests":
            for _ in range(step[1]):
                budget.request()
        elif step[0] == "spend":
            assert [budget.spend() for _ in step[1]] == step[1], step
        else:
            raise AssertionError(step)


@pytest.mark.parametrize("args, script", [
    pytest.param({"percent": 20, "minimum": 3}, [("spend", [True, True, True, False])],
                 id="no-requests-yet-the-minimum"),
    pytest.param({"percent": 20, "minimum": 3}, [("requests", 100), ("spend", [True] * 20 + [False])],
                 id="twenty-percent-of-a-hundred"),
    pytest.param({"percent": 20, "minimum": 3}, [("requests", 10), ("spend", [True] * 3 + [False])],
                 id="the-minimum-when-more-than-the-share"),
    pytest.param({"percent": 0, "minimum": 0}, [("requests", 1000), ("spend", [False])],
                 id="zero-never-retries"),
    pytest.param({"percent": 100, "minimum": 0}, [("requests", 5), ("spend", [True] * 5 + [False])],
                 id="a-hundred-percent-one-retry-a-request"),
    pytest.param({"percent": 20, "minimum": 0},
                 [("requests", 10), ("at", 5), ("requests", 10), ("spend", [True] * 4 + [False])],
                 id="requests-across-the-window-add-up"),
    pytest.param({"percent": 20, "minimum": 0},
                 [("requests", 10), ("spend", [True, True, False]), ("at", 9.5), ("spend", [False]),
                  ("at", 10.5), ("spend", [False]), ("requests", 5), ("spend", [True, False])],
                 id="requests-and-retries-leave-the-window-after-ten-seconds"),
    pytest.param({"percent": 50, "minimum": 1},
                 [("requests", 4), ("spend", [True, True]), ("at", 3), ("spend", [False]), ("at", 11),
                  ("spend", [True, False])],
                 id="spent-retries-count-until-they-leave-too"),
    pytest.param({"percent": 20, "minimum": 1},
                 [("requests", 50), ("at", 100), ("spend", [True, False])],
                 id="a-long-quiet-time-forgets-everything"),
])
def test_retry_budget(args, script):
    _play(args, script)


@pytest.mark.parametrize("max_requests, max_pending, connections, admitted, refused_by", [
    pytest.param(None, None, 2, 50, None, id="no-caps"),
    pytest.param(3, None, 10, 3, "max_requests", id="max_requests"),
    pytest.param(None, 2, 4, 6, "max_pending", id="max_pending-past-the-connections"),
    pytest.param(None, 0, 4, 4, "max_pending", id="max_pending-zero-never-queues"),
    pytest.param(5, 10, 4, 5, "max_requests", id="the-tighter-cap-wins-requests"),
    pytest.param(50, 1, 4, 5, "max_pending", id="the-tighter-cap-wins-pending"),
])
def test_breaker_caps(max_requests, max_pending, connections, admitted, refused_by):
    breaker = Breaker(max_requests=max_requests, max_pending=max_pending, connections=connections)
    answers = [breaker.enter() for _ in range(admitted)]
    assert answers == [None] * admitted and breaker.active == admitted
    assert breaker.enter() == refused_by
    if refused_by is not None:
        assert breaker.active == admitted  # a refused request is not counted
        breaker.leave()
        assert breaker.enter() is None  # one left: room for one
        assert breaker.enter() == refused_by
