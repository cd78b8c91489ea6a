"""How much an upstream is asked at once: the retry budget and the circuit breaker.

Pure bookkeeping, no I/O, an injectable monotonic clock; `Upstreams` asks
before each retry and before each request.

Retries help when one try in a while fails; when most fail, every retry is
more load on an upstream that is already down, and a proxy that tries each
request three times triples an outage. So, as Envoy's retry budgets do, the
retries of the last 10 seconds may be at most `retry_budget` percent of the
requests of those 10 seconds, or `retry_budget_min`, whichever is more (a
quiet upstream still gets a few retries).

The breaker caps what waits on an upstream: past `max_requests` requests
awaiting its answer, or past `max_pending` beyond its `max_connections` (so
waiting for a pooled connection), a request is refused at once with 503 and
Retry-After, instead of joining a pile-up that would time out anyway.
"""

from __future__ import annotations

import time
from typing import Callable

WINDOW = 10.0  # seconds of requests the retry budget looks back on
_SLOTS = 10  # the window is counted in this many steps (one second each)


class RetryBudget:
    """Retries allowed: `percent` of the requests of the last `window` seconds, or `minimum`, whichever is more.

    >>> now = [0.0]
    >>> budget = RetryBudget(20, minimum=1, clock=lambda: now[0])
    >>> for _ in range(10): budget.request()
    >>> [budget.spend() for _ in range(3)]  # 20% of 10 requests
    [True, True, False]
    >>> now[0] = 10.5  # those requests and retries are out of the window
    >>> [budget.spend() for _ in range(2)]  # the minimum
    [True, False]
    """

    __slots__ = ("_share", "_minimum", "_width", "_clock", "_stamp", "_requests", "_retries")

    def __init__(self, percent: float, minimum: int, *, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._share = percent / 100
        self._minimum = minimum
        self._width = window / _SLOTS
        self._clock = clock
        self._stamp = [-1] * _SLOTS  # which step of time each slot counts now
        self._requests = [0] * _SLOTS
        self._retries = [0] * _SLOTS

    def request(self) -> None:
        """Count a request (once, however many tries it takes)."""
        self._requests[self._slot()] += 1

    def spend(self) -> bool:
        """Whether a retry may be made now; if so, it is counted."""
        slot = self._slot()
        step = self._stamp[slot]
        live = [i for i in range(_SLOTS) if self._stamp[i] > step - _SLOTS]
        requests = sum(self._requests[i] for i in live)
        retries = sum(self._retries[i] for i in live)
        if retries >= max(self._minimum, self._share * requests):
            return False
        self._retries[slot] += 1
        return True

    def _slot(self) -> int:
        step = int(self._clock() // self._width)
        slot = step % _SLOTS
        if self._stamp[slot] != step:  # a step of time ago: start it afresh
            self._stamp[slot] = step
            self._requests[slot] = 0
            self._retries[slot] = 0
        return slot


class Breaker:
    """Requests awaiting an upstream, capped.

    `active` counts the requests between `enter` and `leave`: queued for a
    connection, being sent, or waiting for the response's head. Those past
    `connections` (max_connections) are the ones waiting for a connection.

    >>> breaker = Breaker(max_requests=None, max_pending=1, connections=2)
    >>> [breaker.enter() for _ in range(4)]
    [None, None, None, 'max_pending']
    >>> breaker.leave(); breaker.enter()
    """

    __slots__ = ("_max_requests", "_max_active", "active")

    def __init__(self, *, max_requests: int | None, max_pending: int | None, connections: int) -> None:
        self._max_requests = max_requests
        # A request past this many active ones would queue behind more than max_pending others.
        self._max_active = None if max_pending is None else connections + max_pending
        self.active = 0

    def enter(self) -> str | None:
        """Count a request in, or name the cap (`max_requests`, `max_pending`) that refuses it."""
        if self._max_requests is not None and self.active >= self._max_requests:
            return "max_requests"
        if self._max_active is not None and self.active >= self._max_active:
            return "max_pending"
        self.active += 1
        return None

    def leave(self) -> None:
        self.active -= 1
