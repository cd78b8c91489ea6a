"""`UpstreamState`: what the proxy keeps for one upstream, and what it does with each try's result.

Made inside the running loop on the upstream's first use: its balancer,
connection pool, retry budget, breaker, health checks and WebSocket
sessions. It is closed by its owner, the `Upstreams` that made it or the
newest one that adopted it across a reload.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from ..core.settings import UpstreamSettings
from ..core.targets import authority, base_path, dial_key
from ..observe import metrics
from . import health
from .balancer import Balancer, Outcome
from .limits import WINDOW, Breaker, RetryBudget
from .pool import ConnectionPool

if TYPE_CHECKING:
    from .upstreams import Upstreams

log = logging.getLogger("errorproxy.upstream")


@dataclass
class UpstreamState:
    """One upstream's parts; `report` and `retry_delay` are what the retry loop asks of them."""

    settings: UpstreamSettings
    owner: Upstreams  # the one that closes it
    balancer: Balancer
    connections: ConnectionPool
    budget: RetryBudget
    breaker: Breaker | None  # None: no cap
    # Per target, worked out once: the Host that names it, the base path requests go under, what is dialled.
    aims: tuple[tuple[str, str, tuple[str, int]], ...] = ()
    checks: list[asyncio.Task[None]] = field(default_factory=list)  # a health check a target
    # For WebSocket handshakes, made on the first one: one over TCP (key ""), one per Unix socket.
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)

    @classmethod
    def start(cls, upstream: UpstreamSettings, owner: Upstreams) -> UpstreamState:
        """The state of `upstream`, its health checks started (in the running loop)."""
        balancer = Balancer.from_settings(upstream)
        capped = upstream.max_requests is not None or upstream.max_pending is not None
        breaker = Breaker(max_requests=upstream.max_requests, max_pending=upstream.max_pending,
                          connections=upstream.max_connections) if capped else None
        state = cls(upstream, owner, balancer, ConnectionPool(upstream),
                    RetryBudget(upstream.retry_budget, upstream.retry_budget_min), breaker,
                    aims=tuple((authority(url), base_path(url), dial_key(url)) for url in upstream.targets))
        if upstream.health_check is not None:
            loop = asyncio.get_running_loop()
            state.checks = [loop.create_task(health.watch(upstream, index, balancer, state.connections.tls))
                            for index in range(len(upstream.targets))]
        return state

    def report(self, index: int, result: Outcome, what: str | int, request_id: str,
               quiet: bool = False) -> float | None:
        """Tell the balancer what a try at target `index` came to (`what`: the failure, or the status, for the log).

        An ejection is counted, and logged unless `quiet` and the target was
        unreachable (the caller's line says so). The seconds it is ejected for, if it was.
        """
        ejected = self.balancer.report(index, result)
        if ejected is not None:
            upstream = self.settings
            metrics.target_ejected(upstream.name, "connect" if result is Outcome.UNREACHABLE else "failures")
            if not (quiet and result is Outcome.UNREACHABLE):
                log.warning("upstream %s target %s ejected for %gs: %s in a row, the last: %s request_id=%s",
                            upstream.name, upstream.targets[index], ejected,
                            "unreachable" if result is Outcome.UNREACHABLE else "failed", what, request_id)
        return ejected

    def retry_delay(self, reason: str | None, tries: int, idempotent: bool, body_started: bool,
                    request_id: str) -> float | None:
        """The balancer's retry delay, if the retry budget allows one more retry (then spent); None: no retry."""
        delay = self.balancer.retry_delay(reason, tries, idempotent=idempotent, body_started=body_started)
        if delay is None:
            return None
        if not self.budget.spend():
            upstream = self.settings
            metrics.retry_overflowed(upstream.name)
            log.warning("upstream %s: retry budget spent (%g%% of the requests of the last %gs, at least %d): "
                        "no retry after %s request_id=%s", upstream.name, upstream.retry_budget, WINDOW,
                        upstream.retry_budget_min, reason, request_id)
            return None
        return delay

    async def close(self) -> None:
        for check in self.checks:
            check.cancel()
        await asyncio.gather(*self.checks, return_exceptions=True)
        await self.connections.close()
        for session in self.sessions.values():
            await session.close()
