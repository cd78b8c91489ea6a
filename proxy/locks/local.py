"""Locks by key within one process: writes to one resource go one at a time, first come first served.

    locks = LocalLocks()
    held = await locks.acquire("/documents/42", timeout=5.0, max_waiters=100)
    try: ...  # check, forward, stream the answer
    finally: held.release()

A key's entry exists only while someone holds it, so a process that has
written to a million resources keeps no trace of them. A release hands the
lock straight to the first waiter still waiting: nobody arriving later can
slip in between. Waiting is bounded twice: by `timeout`, and by
`max_waiters` (a write arriving when that many already wait is refused at
once rather than queued behind them). Both refusals raise `LockTimeout`.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..core import guard_errors


class LocalLocks:
    """One FIFO lock per key, made on first use and dropped on last release."""

    def __init__(self) -> None:
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}  # key present: held by someone

    def held(self, key: str) -> bool:
        return key in self._waiters

    def waiting(self, key: str) -> int:
        """How many acquirers wait for `key` (cancelled ones included until they clean up)."""
        return len(self._waiters.get(key, ()))

    async def acquire(self, key: str, *, timeout: float, max_waiters: int) -> LocalHeld:
        """The lock on `key`, once every earlier acquirer has released it; LockTimeout otherwise."""
        waiters = self._waiters.get(key)
        if waiters is None:
            self._waiters[key] = deque()
            return LocalHeld(self, key)
        if len(waiters) >= max_waiters:
            raise guard_errors.LockTimeout(
                "Too many writes to this resource are already waiting. Retry shortly.")
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(granted)
        try:
            async with asyncio.timeout(timeout):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                self._release(key)  # handed over just as the wait ended: pass it on
            else:
                granted.cancel()
                try:
                    waiters.remove(granted)
                except ValueError:
                    pass
            if isinstance(exc, TimeoutError):
                raise guard_errors.LockTimeout() from None
            raise
        return LocalHeld(self, key)

    def _release(self, key: str) -> None:
        waiters = self._waiters[key]
        while waiters:
            granted = waiters.popleft()
            if not granted.done():
                granted.set_result(None)  # the lock passes to it, never becoming free in between
                return
        del self._waiters[key]


class LocalHeld:
    """A held local lock; `release` is idempotent."""

    __slots__ = ("_locks", "key", "_released")

    def __init__(self, locks: LocalLocks, key: str) -> None:
        self._locks = locks
        self.key = key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._locks._release(self.key)
