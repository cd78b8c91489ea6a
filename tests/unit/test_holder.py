"""The Holder: the requests running on each Proxy, and what a cancelled one leaves behind."""

from __future__ import annotations

import asyncio
import gc
import weakref

from proxy.ops.reload import Holder


class _Slow:
    """A Proxy whose requests wait until cancelled."""

    async def handle(self, request):
        await asyncio.sleep(30)


async def test_a_cancelled_request_leaves_its_connection_s_task_to_reference_counting() -> None:
    """A request runs in its connection's task (aiohttp_loop.DirectStart), which nothing awaits.
    Cancelled (the client went away), that task keeps its CancelledError, whose traceback keeps
    Holder.handle's frame. Were the task still one of that frame's locals, the two would form a cycle
    only the collector frees, with the request's buffers in it: 200 vanishing clients left 4-6 MiB
    more (test_many_vanishing_clients_leak_neither_memory_nor_upstream_connections)."""
    holder = Holder(_Slow())

    async def connection() -> None:  # as DirectStart.start awaits each request
        await holder.handle(None)

    gc.disable()
    try:
        task = asyncio.ensure_future(connection())
        await asyncio.sleep(0)
        assert holder.in_flight == 1
        task.cancel()
        await asyncio.wait([task])  # without asking for its result, as nothing asks a connection's
        assert task.cancelled() and holder.in_flight == 0
        await asyncio.sleep(0)  # the loop lets go of the finished task
        freed = weakref.ref(task)
        del task
        assert freed() is None, "the cancelled request's task is held in a reference cycle"
    finally:
        gc.enable()
