"""Which target of an upstream gets the next try, and whether a failed try is made again.

Pure bookkeeping, no I/O: `Upstreams` reports what each try came to and
asks for the next target. Times come from an injectable monotonic clock.

Targets are used round robin, skipping ejected ones. A target is ejected
when it could not be connected to (refused, unreachable, connect timeout),
at once, or after `eject_after` tries in a row that connected and then failed
(a 5xx answer, a read timeout, a reset, a malformed answer). An ejection lasts
`eject_for`, doubled for each further ejection in a row up to `max_eject_for`;
an answer that is not a 5xx resets both counts. When an ejection ends, one
request probes the target (half-open): a good answer re-admits it, another
failure ejects it again, for twice as long. While the probe is out the target
stays skipped, so a dead target costs one request a cool-down, not one in N.

An active health check (`mark`) overrules both: a failed check takes the
target out until a check passes (traffic does not probe it), and a passed
check re-admits a target that traffic ejected.

When every target is out, the one whose ejection ends first is tried anyway:
a proxy that refuses without trying could not notice that a single-target
upstream came back.

Retries. A failed try is made again when `retry_on` names what it came to,
the request can be sent again, `retries` are left and the retry budget
(`limits.RetryBudget`, asked by `Upstreams`) allows it. It goes to a target
this request has not tried yet, after `retry_backoff` doubled per try made:

    what the try came to        retry_on   GET HEAD OPTIONS TRACE     POST PATCH, and any
                                           PUT DELETE, without body   request with a body
    no connection (refused,     connect    retried [1]                retried, unless its
      unreachable, connect                                            body began to stream
      timeout): nothing sent
    connected, then closed,     reset      retried [2]                not retried
      reset or timed out
      before the answer
    answered 502, 503 or 504    502 503    retried [2]: the answer's  not retried: the
                                504        body is read (a little)    answer goes to the
                                           and dropped first          client
    a malformed answer, other   -          not retried                not retried
      5xx, waiting for a
      pooled connection timed
      out (the pool is full)

[1] only to a target not tried yet: a connect failure is the target's, so
trying it again at once is pointless; a single-target upstream is not
retried. [2] to an untried target while one is left, else to a tried one
again (a 503 is often a passing state), so a single-target upstream is
retried too. A method that is not idempotent, or a body that was sent, may
have had its effect upstream already: sending it again could apply it twice
(nginx, Envoy and HAProxy draw the line in the same place). When retries run
out, the client gets the last answer or failure. Apart from this rule, the
connection pool itself sends an idempotent request without a body once more,
on a new connection, when a reused keep-alive connection turns out to have
been closed by the upstream before any answer (RFC 9112 §9.3.1.1; see
`pool.ConnectionPool.request`).
"""

from __future__ import annotations

import enum
import time
from typing import Callable, Collection

from ..core.settings import UpstreamSettings

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})  # RFC 9110 §9.2.2


class Outcome(enum.Enum):
    """What one try at a target came to, as far as that target's health goes."""

    ANSWERED = "answered"  # the target answered, with anything but a 5xx: it works
    FAILED = "failed"  # connected, then a 5xx answer, a timeout, a reset or a malformed answer
    UNREACHABLE = "unreachable"  # refused, unreachable or timed out connecting: nothing was sent
    UNDECIDED = "undecided"  # failed before reaching the target (the pool was full)


class Balancer:
    """Round robin over an upstream's targets, with ejection and the retry rule.

    >>> now = [0.0]
    >>> balancer = Balancer(3, eject_for=10, retries=2, backoff=0.05, clock=lambda: now[0])
    >>> [balancer.pick() for _ in range(4)]
    [0, 1, 2, 0]
    >>> balancer.report(1, Outcome.UNREACHABLE)  # ejected: for how long
    10.0
    >>> [balancer.pick() for _ in range(4)]
    [2, 0, 2, 0]
    >>> now[0] = 10.0  # cool-down over: target 1 gets one probe
    >>> [balancer.pick() for _ in range(3)]
    [1, 2, 0]
    """

    __slots__ = ("_count", "_eject_for", "_max_eject_for", "_eject_after", "_retries", "_backoff", "_retry_on",
                 "_clock", "_until", "_probing", "_failures", "_ejections", "_down", "_next")

    def __init__(self, targets: int, *, eject_for: float, max_eject_for: float | None = None, eject_after: int = 0,
                 retries: int = 0, backoff: float = 0.0, retry_on: Collection[str] = ("connect",),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = targets
        self._eject_for = eject_for
        self._max_eject_for = max(eject_for, max_eject_for if max_eject_for is not None else eject_for)
        self._eject_after = eject_after
        self._retries = retries
        self._backoff = backoff
        self._retry_on = frozenset(retry_on)
        self._clock = clock
        self._until: list[float | None] = [None] * targets  # None: admitted; else ejected until then
        self._probing = [False] * targets  # its ejection ended and a probe is out
        self._failures = [0] * targets  # failed tries in a row
        self._ejections = [0] * targets  # ejections in a row
        self._down = [False] * targets  # its last health check failed
        self._next = 0

    @classmethod
    def from_settings(cls, upstream: UpstreamSettings, clock: Callable[[], float] = time.monotonic) -> Balancer:
        return cls(len(upstream.targets), eject_for=upstream.eject_for, max_eject_for=upstream.max_eject_for,
                   eject_after=upstream.eject_after, retries=upstream.retries, backoff=upstream.retry_backoff,
                   retry_on=upstream.retry_on, clock=clock)

    def pick(self, tried: Collection[int] = ()) -> int:
        """The index of the target for the next try of a request that has tried `tried`.

        The next admitted target in turn, or one whose cool-down is over (its
        probe). If there is none, the one back soonest (a target that failed
        its health check last). Tried targets are passed over while any other is left.
        """
        if self._count == 1 and self._until[0] is None and not self._down[0]:
            return 0  # one target, admitted: nothing to choose
        now = self._clock()
        untried = [i for i in range(self._count) if i not in tried] or list(range(self._count))
        for step in range(self._count):
            index = (self._next + step) % self._count
            until = self._until[index]
            if index in untried and not self._down[index] and (until is None or until <= now):
                self._next = (index + 1) % self._count
                if until is not None:
                    # The probe: others pass it over until its verdict, or until a
                    # cool-down later if no verdict comes (the request was cancelled).
                    self._until[index] = now + self._eject_for
                    self._probing[index] = True
                return index
        return min(untried, key=lambda i: (self._down[i], now if self._until[i] is None else self._until[i]))

    def report(self, index: int, outcome: Outcome) -> float | None:
        """Record what a try at target `index` came to; the seconds it is now ejected for, if this ejected it."""
        if outcome is Outcome.ANSWERED:
            if self._until[index] is not None or self._failures[index]:  # else admitted and clean already
                self._admit(index)
        elif outcome is Outcome.UNREACHABLE:
            return self._eject(index)
        elif outcome is Outcome.FAILED:
            self._failures[index] += 1
            if self._eject_after and self._failures[index] >= self._eject_after:
                return self._eject(index)
        return None

    def mark(self, index: int, healthy: bool) -> bool:
        """Record a health check of target `index`; whether that changed its standing.

        A failed check takes it out until a check passes; a passed one
        re-admits it, ending an ejection by traffic too.
        """
        if healthy:
            changed = self._down[index] or self.ejected(index)
            self._down[index] = False
            self._admit(index)
            return changed
        changed = not self._down[index]
        self._down[index] = True
        return changed

    def ejected(self, index: int) -> bool:
        """Whether target `index` is skipped now (ejected, out on its probe, or failing its health check)."""
        until = self._until[index]
        return self._down[index] or (until is not None and until > self._clock())

    def retry_delay(self, reason: str | None, tries: int, *, idempotent: bool, body_started: bool) -> float | None:
        """Seconds to wait before trying again after the `tries`-th try failed; None: do not.

        `reason` is what the try came to, as `retry_on` spells it (`connect`,
        `reset`, `503`, ...; None for anything else). `idempotent`: the method
        is, and the request has no body. `body_started`: a body began to stream.

        >>> balancer = Balancer(4, eject_for=10, retries=2, backoff=0.05, retry_on=("connect", "503"))
        >>> [balancer.retry_delay("connect", tries, idempotent=False, body_started=False) for tries in (1, 2, 3)]
        [0.05, 0.1, None]
        >>> balancer.retry_delay("503", 1, idempotent=False, body_started=False) is None
        True
        """
        if reason is None or reason not in self._retry_on or tries > self._retries:
            return None
        if reason == "connect":
            if body_started or tries >= self._count:
                return None
        elif not idempotent:
            return None
        return self._backoff * 2 ** (tries - 1)

    def _admit(self, index: int) -> None:
        self._until[index] = None
        self._probing[index] = False
        self._failures[index] = 0
        self._ejections[index] = 0

    def _eject(self, index: int) -> float | None:
        now = self._clock()
        until = self._until[index]
        if until is not None and until > now and not self._probing[index]:
            return None  # ejected already: a verdict of a try that began before
        self._ejections[index] += 1
        doublings = min(self._ejections[index] - 1, 32)  # past the cap long before: no huge powers of two
        seconds = float(min(self._eject_for * 2**doublings, self._max_eject_for))
        self._until[index] = now + seconds
        self._probing[index] = False
        return seconds
