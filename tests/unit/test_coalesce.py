"""Writes held to the end of the loop's turn while other requests are under way, on real socket pairs."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from proxy.upstream import coalesce


@pytest.fixture
async def pair():
    """`await pair()`: a transport on one end of a socket pair, and the other end to read from."""
    made: list[tuple[asyncio.Transport, socket.socket]] = []

    async def make() -> tuple[asyncio.Transport, socket.socket]:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
        made.append((transport, theirs))
        return transport, theirs

    yield make
    for transport, theirs in made:
        transport.abort()
        theirs.close()
    await asyncio.sleep(0)


@contextlib.contextmanager
def under_way(requests: int):
    for _ in range(requests):
        coalesce.request_started()
    try:
        yield
    finally:
        for _ in range(requests):
            coalesce.request_ended()


def received(sock: socket.socket) -> bytes | None:
    """What has arrived so far; None when nothing has (b"" is the end of the stream)."""
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return None


async def test_a_lone_request_writes_at_once(pair) -> None:
    transport, peer = await pair()
    with under_way(1):
        coalesce.write(asyncio.get_running_loop(), transport, b"alone")
        assert received(peer) == b"alone"


async def test_with_company_writes_wait_for_the_end_of_the_turn_and_then_all_go(pair) -> None:
    (first, first_peer), (second, second_peer) = await pair(), await pair()
    with under_way(2):
        coalesce.write(asyncio.get_running_loop(), first, b"to the first")
        coalesce.write(asyncio.get_running_loop(), second, b"to the second")
        assert received(first_peer) is None and received(second_peer) is None
        await asyncio.sleep(0)
        assert received(first_peer) == b"to the first"
        assert received(second_peer) == b"to the second"


async def test_writes_to_one_transport_keep_their_order(pair) -> None:
    transport, peer = await pair()
    with under_way(3):
        for part in (b"one ", b"two ", b"three"):
            coalesce.write(asyncio.get_running_loop(), transport, part)
        await asyncio.sleep(0)
    assert received(peer) == b"one two three"


async def test_a_transport_with_bytes_buffered_is_written_at_once_so_its_drain_pushes_back(pair) -> None:
    transport, peer = await pair()
    transport.write(b"x" * (16 << 20))  # more than the socket takes: the rest waits in the transport
    backlog = transport.get_write_buffer_size()
    assert backlog > 0
    with under_way(2):
        coalesce.write(asyncio.get_running_loop(), transport, b"more")
        assert transport.get_write_buffer_size() == backlog + 4


async def test_a_transport_closed_before_the_turn_ends_gets_nothing_and_the_others_theirs(pair) -> None:
    (gone, gone_peer), (kept, kept_peer) = await pair(), await pair()
    with under_way(2):
        coalesce.write(asyncio.get_running_loop(), gone, b"never sent")
        coalesce.write(asyncio.get_running_loop(), kept, b"sent")
        gone.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert received(gone_peer) == b""  # the end of the stream, and nothing before it
    assert received(kept_peer) == b"sent"


async def test_a_write_that_fails_at_the_end_of_the_turn_keeps_none_of_the_others(pair) -> None:
    (shut, shut_peer), (kept, kept_peer) = await pair(), await pair()
    with under_way(2):
        coalesce.write(asyncio.get_running_loop(), shut, b"after its end")
        coalesce.write(asyncio.get_running_loop(), kept, b"sent")
        shut.write_eof()  # a write after this raises, though the transport is not closing
        await asyncio.sleep(0)
    assert received(shut_peer) == b""
    assert received(kept_peer) == b"sent"


async def test_what_is_held_for_a_transport_about_to_close_goes_first_and_once(pair) -> None:
    (closing, closing_peer), (other, other_peer) = await pair(), await pair()
    loop = asyncio.get_running_loop()
    with under_way(2):
        coalesce.write(loop, closing, b"the last answer")
        coalesce.write(loop, other, b"held")
        coalesce.write_held(loop, closing)
        closing.close()
        assert received(closing_peer) == b"the last answer"
        assert received(other_peer) is None  # still held for the end of the turn
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert received(closing_peer) == b""
    assert received(other_peer) == b"held"
