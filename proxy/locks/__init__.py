"""The conflict guard's write locks: one resource, one write at a time.

    local.py        LocalLocks: FIFO locks by key in this process, waiters bounded
    redis_lease.py  RedisLocks: a lease in Redis with a fencing token, shared by replicas

`Locks.acquire` always takes the process's own lock for the key first, so
writes queue here in order and only one of them at a time asks Redis; with
`lock: redis://...` it then takes the shared one within what is left of
`lock_timeout`. The local locks belong to the process, not to a config: a
reload that swaps the config in keeps the writes still in flight under the
old one in the same queues as those that arrive under the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core import guard_errors
from ..core.guard_settings import Concurrency
from ..core.settings import Route
from .local import LocalHeld, LocalLocks

if TYPE_CHECKING:
    from .redis_lease import RedisHeld, RedisLocks

__all__ = ["Held", "LocalLocks", "Locks"]

log = logging.getLogger("errorproxy.guard")

PROCESS_LOCKS = LocalLocks()


class Held:
    """The locks one write holds: the local one, and the Redis one when configured and reachable."""

    __slots__ = ("local", "remote", "policy")

    def __init__(self, local: LocalHeld, remote: RedisHeld | None, policy: str) -> None:
        self.local = local
        self.remote = remote
        self.policy = policy  # on_lock_unavailable: fail | forward

    @property
    def fencing_token(self) -> int | None:
        return self.remote.fencing_token if self.remote is not None else None

    async def confirm(self) -> None:
        """Right before the write is forwarded: the shared lock is still ours (LockLost if not)."""
        if self.remote is None:
            return
        try:
            await self.remote.confirm()
        except guard_errors.LockUnavailable:
            if self.policy != "forward":
                raise

    async def release(self) -> None:
        try:
            if self.remote is not None:
                await self.remote.release()
        finally:
            self.local.release()


class Locks:
    """The locks a configuration uses: the process's local ones and a client per Redis URL."""

    def __init__(self, redis_urls: Iterable[str] = (), local: LocalLocks = PROCESS_LOCKS) -> None:
        self._local = local
        self._redis: dict[str, RedisLocks] = {}
        for url in redis_urls:  # made now, so that the first write does not wait for redis-py's import
            self._remote(url)

    @classmethod
    def from_routes(cls, routes: Iterable[Route]) -> Locks:
        """The locks `routes` use, a client made now for each Redis URL they name."""
        return cls(route.concurrency.lock for route in routes
                   if route.concurrency is not None and route.concurrency.lock != "local")

    async def acquire(self, concurrency: Concurrency, key: str, request_id: str) -> Held:
        """Both locks on `key`, or LockTimeout / LockUnavailable (the latter only with
        `on_lock_unavailable: fail`; with `forward` the write goes on under the local lock alone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + concurrency.lock_timeout
        local = await self._local.acquire(key, timeout=concurrency.lock_timeout,
                                          max_waiters=concurrency.max_waiters)
        if concurrency.lock == "local":
            return Held(local, None, concurrency.on_lock_unavailable)
        try:
            remote = await self._remote(concurrency.lock).acquire(
                key, lease=concurrency.lock_lease, timeout=max(0.0, deadline - loop.time()), request_id=request_id)
        except guard_errors.LockUnavailable as exc:
            if concurrency.on_lock_unavailable != "forward":
                local.release()
                raise
            log.warning("lock store unreachable (%s: %.200s): write to %s goes on under this process's lock "
                        "alone (on_lock_unavailable: forward) request_id=%s",
                        type(exc.__cause__).__name__, exc.__cause__, key, request_id)
            return Held(local, None, concurrency.on_lock_unavailable)
        except BaseException:
            local.release()
            raise
        return Held(local, remote, concurrency.on_lock_unavailable)

    def _remote(self, url: str) -> RedisLocks:
        locks = self._redis.get(url)
        if locks is None:
            from .redis_lease import RedisLocks  # redis-py only in a proxy whose config names Redis

            locks = self._redis[url] = RedisLocks(url)
        return locks

    async def close(self) -> None:
        clients, self._redis = list(self._redis.values()), {}
        for client in clients:
            await client.close()
