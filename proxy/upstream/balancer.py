"""Which target of an upstream gets the next try, and whether a failed try is made again.

Pure bookkeeping, no I/O: `Upstreams` reports what each try came to and
asks for the next target. Times come from an injectable monotonic clock.

Targets are used round robin, skipping ejected ones. A target that could not
be connected to (refused, unreachable, connect timeout) is ejected for
`eject_for` seconds. When that has passed, one request probes it (half-open):
a connection re-admits it, another failure ejects it again. While the probe is
out the target stays skipped, so a dead target costs one request a cool-down,
not one in N. When every target is ejected, the one whose ejection ends first
is tried anyway: a proxy that refuses without trying could not notice that a
single-target upstream came back.

Retries. Whether a failed try is made again, on a target this request has not
tried yet, after `retry_backoff` doubled per try made (no more than `retries`
extra tries):

    what the failed try came to                    GET HEAD OPTIONS    POST PATCH
                                                   TRACE PUT DELETE    and others
    no connection (refused, unreachable,           retried             retried
      connect timeout): nothing was sent
    connected, then failed (reset, closed,         not retried [*]     not retried
      timed out, malformed answer)
    the request body had started streaming         not retried         not retried
    timed out waiting for a free pooled            not retried         not retried
      connection (the upstream is saturated)

The method does not enter into it: a request whose connection was never made
was not sent, so trying it elsewhere cannot repeat its effect (nginx, Envoy
and HAProxy retry connect failures for every method alike). Once anything may
have reached a target, a retry could apply it twice, and the body stream is
consumed anyway. [*] Apart from this rule, the connection pool itself sends an
idempotent request without a body once more, on a new connection, when a
reused keep-alive connection turns out to have been closed by the upstream
before any answer (RFC 9112 §9.3.1.1; see `pool.ConnectionPool.request`).
"""

from __future__ import annotations

import enum
import time
from typing import Callable, Collection

from ..core.settings import UpstreamSettings


class Outcome(enum.Enum):
    """What one try at a target came to, as far as that target's health goes."""

    CONNECTED = "connected"  # the target took the connection, whatever came after
    UNREACHABLE = "unreachable"  # refused, unreachable or timed out connecting: nothing was sent
    UNDECIDED = "undecided"  # failed before reaching the target (the pool was full)


class Balancer:
    """Round robin over an upstream's targets, with ejection and the retry rule.

    >>> now = [0.0]
    >>> balancer = Balancer(3, eject_for=10, retries=2, backoff=0.05, clock=lambda: now[0])
    >>> [balancer.pick() for _ in range(4)]
    [0, 1, 2, 0]
    >>> balancer.report(1, Outcome.UNREACHABLE)
    >>> [balancer.pick() for _ in range(4)]
    [2, 0, 2, 0]
    >>> now[0] = 10.0  # cool-down over: target 1 gets one probe
    >>> [balancer.pick() for _ in range(3)]
    [1, 2, 0]
    """

    __slots__ = ("_count", "_eject_for", "_retries", "_backoff", "_clock", "_until", "_next")

    def __init__(self, targets: int, *, eject_for: float, retries: int = 0, backoff: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = targets
        self._eject_for = eject_for
        self._retries = retries
        self._backoff = backoff
        self._clock = clock
        self._until: list[float | None] = [None] * targets  # None: admitted; else ejected until then
        self._next = 0

    @classmethod
    def from_settings(cls, upstream: UpstreamSettings, clock: Callable[[], float] = time.monotonic) -> Balancer:
        return cls(len(upstream.targets), eject_for=upstream.eject_for, retries=upstream.retries,
                   backoff=upstream.retry_backoff, clock=clock)

    def pick(self, tried: Collection[int] = ()) -> int:
        """The index of the target for the next try of a request that has tried `tried`.

        The next admitted target in turn, or one whose cool-down is over (its
        probe). If there is none, the ejected one whose ejection ends first.
        Tried targets are passed over while any other is left.
        """
        if self._count == 1 and self._until[0] is None:
            return 0  # one target, admitted: nothing to choose
        now = self._clock()
        untried = [i for i in range(self._count) if i not in tried] or list(range(self._count))
        for step in range(self._count):
            index = (self._next + step) % self._count
            until = self._until[index]
            if index in untried and (until is None or until <= now):
                self._next = (index + 1) % self._count
                if until is not None:
                    # The probe: others pass it over until its verdict, or until a
                    # cool-down later if no verdict comes (the request was cancelled).
                    self._until[index] = now + self._eject_for
                return index
        return min(untried, key=lambda i: now if self._until[i] is None else self._until[i])

    def report(self, index: int, outcome: Outcome) -> None:
        """Record what a try at target `index` came to."""
        if outcome is Outcome.CONNECTED:
            self._until[index] = None
        elif outcome is Outcome.UNREACHABLE:
            self._until[index] = self._clock() + self._eject_for

    def ejected(self, index: int) -> bool:
        """Whether target `index` is skipped now (ejected, or out on its probe)."""
        until = self._until[index]
        return until is not None and until > self._clock()

    def retry_delay(self, outcome: Outcome, tries: int, replayable: bool) -> float | None:
        """Seconds to wait before trying again after the `tries`-th try failed; None: do not.

        `replayable` is False once the request body has started streaming.

        >>> balancer = Balancer(4, eject_for=10, retries=2, backoff=0.05)
        >>> [balancer.retry_delay(Outcome.UNREACHABLE, tries, True) for tries in (1, 2, 3)]
        [0.05, 0.1, None]
        >>> balancer.retry_delay(Outcome.CONNECTED, 1, True) is None
        True
        """
        if outcome is not Outcome.UNREACHABLE or not replayable:
            return None
        if tries > self._retries or tries >= self._count:
            return None
        return self._backoff * 2 ** (tries - 1)
