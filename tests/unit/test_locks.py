"""LocalLocks, in the event loop and nothing else: order, bounds, cancellation, no leftovers."""

from __future__ import annotations

import asyncio

import pytest

from proxy.core import guard_errors
from proxy.locks.local import LocalLocks


async def test_one_holder_at_a_time_first_come_first_served():
    locks = LocalLocks()
    order: list[int] = []

    async def write(n: int) -> None:
        held = await locks.acquire("/doc", timeout=5, max_waiters=100)
        order.append(n)
        await asyncio.sleep(0.001)
        assert locks.held("/doc")
        held.release()

    first = await locks.acquire("/doc", timeout=5, max_waiters=100)
    tasks = [asyncio.create_task(write(n)) for n in range(20)]
    await asyncio.sleep(0.01)
    assert order == [] and locks.waiting("/doc") == 20
    first.release()
    await asyncio.gather(*tasks)
    assert order == list(range(20))
    assert not locks.held("/doc")  # the last release drops the key


async def test_other_keys_do_not_wait():
    locks = LocalLocks()
    held = await locks.acquire("/a", timeout=5, max_waiters=0)
    other = await asyncio.wait_for(locks.acquire("/b", timeout=5, max_waiters=0), 1)
    other.release()
    held.release()


async def test_a_wait_past_the_timeout_is_refused_and_leaves_no_waiter():
    locks = LocalLocks()
    held = await locks.acquire("/doc", timeout=5, max_waiters=10)
    with pytest.raises(guard_errors.LockTimeout):
        await locks.acquire("/doc", timeout=0.02, max_waiters=10)
    assert locks.waiting("/doc") == 0
    held.release()
    assert not locks.held("/doc")


async def test_waiters_past_the_bound_are_refused_at_once():
    locks = LocalLocks()
    held = await locks.acquire("/doc", timeout=5, max_waiters=2)
    waiting = [asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=2)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(guard_errors.LockTimeout) as refused:
        await asyncio.wait_for(locks.acquire("/doc", timeout=5, max_waiters=2), 0.5)
    assert "already waiting" in refused.value.detail
    held.release()
    for task in waiting:
        (await task).release()
    assert not locks.held("/doc")


async def test_a_cancelled_waiter_is_skipped():
    locks = LocalLocks()
    held = await locks.acquire("/doc", timeout=5, max_waiters=10)
    gone = asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=10))
    next_one = asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=10))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    held.release()
    (await asyncio.wait_for(next_one, 1)).release()
    assert gone.cancelled() and not locks.held("/doc")


async def test_a_lock_handed_over_as_its_waiter_is_cancelled_passes_on():
    """The release grants the lock to a waiter whose task is cancelled before it runs:
    the lock must go to the next waiter, not be lost with the cancelled one."""
    locks = LocalLocks()
    held = await locks.acquire("/doc", timeout=5, max_waiters=10)
    unlucky = asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=10))
    next_one = asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=10))
    await asyncio.sleep(0)
    held.release()  # grants `unlucky`, which has not run yet
    unlucky.cancel()
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    (await asyncio.wait_for(next_one, 1)).release()
    assert not locks.held("/doc")


async def test_release_is_idempotent():
    locks = LocalLocks()
    held = await locks.acquire("/doc", timeout=5, max_waiters=10)
    waiter = asyncio.create_task(locks.acquire("/doc", timeout=5, max_waiters=10))
    await asyncio.sleep(0)
    held.release()
    held.release()  # must not release the waiter's lock too
    second = await waiter
    assert locks.held("/doc")
    second.release()
    assert not locks.held("/doc")
