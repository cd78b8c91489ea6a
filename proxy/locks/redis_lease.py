"""Locks shared by replicas, kept in Redis: a lease, renewed while held, and a fencing token.

    locks = RedisLocks("redis://127.0.0.1:6379/0")
    held = await locks.acquire("orders:/documents/42", lease=10.0, timeout=5.0, request_id=rid)
    await held.confirm()          # still ours, right before the write is forwarded
    held.fencing_token            # 1873: sent upstream, larger than every earlier holder's
    await held.release()

The lock is one key, `errorproxy:lock:<key>`, set with `SET NX PX` to a random
owner value; it is released and renewed only by a script that first checks
that value (compare-and-delete, compare-and-pexpire), so a holder whose lease
ran out can never free or extend a lock that has passed to someone else. The
same script that takes the lock increments `errorproxy:fencing`, one counter for
every lock, so each holder gets a token larger than any earlier holder's: an
upstream that remembers the largest token it has seen for a resource can
refuse a write that arrives late from a holder whose lease expired.

A lease that is not renewed (the proxy froze, crashed, or lost Redis) lets
the lock go after `lease` seconds. While held, it is renewed every third of
the lease. Taking the lock polls `SET NX` with a backoff of 2 to 50 ms; the
caller serializes its own waiters locally first, so one task per process and
key polls.

Every Redis failure (refused, reset, timed out) raises `LockUnavailable`; one
command waits at most `COMMAND_TIMEOUT` seconds, and redis-py's own retries
are off, so a dead Redis is known at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..core import guard_errors

log = logging.getLogger("errorproxy.guard")

PREFIX = "errorproxy:lock:"
FENCING_KEY = "errorproxy:fencing"
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
_POLL_FIRST, _POLL_MOST = 0.002, 0.05

# KEYS[1] the lock, KEYS[2] the fencing counter; ARGV[1] the owner, ARGV[2] the lease in ms.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLocks:
    """The locks of one Redis URL (its client, pooled connections and scripts)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # a failure is reported now, not after a backoff
        )
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    async def acquire(self, key: str, *, lease: float, timeout: float, request_id: str) -> RedisHeld:
        """The lock on `key` within `timeout` seconds: LockTimeout if still taken, LockUnavailable
        if Redis cannot be reached."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        owner = secrets.token_hex(16)
        lease_ms = max(1, round(lease * 1000))
        delay = _POLL_FIRST
        while True:
            token = int(await self._call(self._acquire, [PREFIX + key, FENCING_KEY], [owner, lease_ms]))
            if token:
                return RedisHeld(self, key, owner, token, lease, request_id)
            left = deadline - loop.time()
            if left <= 0:
                raise guard_errors.LockTimeout()
            await asyncio.sleep(min(left, delay * (0.5 + random.random())))
            delay = min(delay * 2, _POLL_MOST)

    async def _call(self, script, keys: list[str], args: list[object]) -> int:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise guard_errors.LockUnavailable() from exc

    async def close(self) -> None:
        await self.client.aclose()


class RedisHeld:
    """A held Redis lock: renewed in the background until released."""

    def __init__(self, locks: RedisLocks, key: str, owner: str, token: int, lease: float, request_id: str) -> None:
        self._locks = locks
        self.key = key
        self._owner = owner
        self.fencing_token = token
        self._lease = lease
        self._request_id = request_id
        self.lost = False  # the lock passed to someone else while we held it
        self._renewer = asyncio.get_running_loop().create_task(self._keep_renewed())

    async def confirm(self) -> None:
        """Prove the lock is still ours and extend its lease (right before the write leaves):
        LockLost if it is not, LockUnavailable if Redis cannot say."""
        if self.lost or not await self._renew_once():
            self.lost = True
            raise guard_errors.LockLost()

    async def _renew_once(self) -> bool:
        lease_ms = max(1, round(self._lease * 1000))
        return bool(await self._locks._call(self._locks._renew, [PREFIX + self.key], [self._owner, lease_ms]))

    async def _keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if await self._renew_once():
                    continue
                self.lost = True
                log.warning("lock on %s lost while held (its lease ran out); fencing token %d "
                            "request_id=%s", self.key, self.fencing_token, self._request_id)
                return
            except guard_errors.LockUnavailable as exc:
                log.warning("lock on %s could not be renewed (%s: %.200s); fencing token %d request_id=%s",
                            self.key, type(exc.__cause__).__name__, exc.__cause__, self.fencing_token,
                            self._request_id)

    async def release(self) -> None:
        """Free the lock if it is still ours; a failure leaves it to expire with its lease."""
        self._renewer.cancel()
        try:
            await self._locks._call(self._locks._release, [PREFIX + self.key], [self._owner])
        except guard_errors.LockUnavailable as exc:
            log.warning("lock on %s not released (%s: %.200s); it expires within %gs request_id=%s",
                        self.key, type(exc.__cause__).__name__, exc.__cause__, self._lease, self._request_id)
