"""Talking to upstream services: `Upstreams.send` is the way in.

    upstreams.py   Upstreams: send (and connect_websocket), the retry loop, adoption across reloads
    state.py       UpstreamState: one upstream's balancer, pool, budget, breaker, health checks
    failures.py    map_failure: every client failure to its ProxyError, in one place
    balancer.py    round robin over targets, ejection (unreachable, failing, health), the retry rule (pure)
    limits.py      the retry budget and the breaker (pure)
    health.py      active health checks, a task a target
    pool.py        ConnectionPool: keep-alive connections to one upstream, capped
    connection.py  one connection (an asyncio protocol), one exchange at a time
    response.py    one response, parsed by llhttp as it arrives
    coalesce.py    small whole writes of one turn of the loop, sent together (client side too)
    errors.py      what can go wrong on the wire (UpstreamFailure and its kinds)
    session.py     the aiohttp session WebSocket handshakes use
"""

from .failures import map_failure
from .response import Response
from .upstreams import Upstreams, read_capped

__all__ = ["Response", "Upstreams", "map_failure", "read_capped"]
