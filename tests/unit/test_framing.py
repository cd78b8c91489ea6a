"""framing: one verdict on request lines and chunk sizes, whichever parser read them; header-section ends."""

from __future__ import annotations

import pytest

from proxy.core import errors
from proxy.core.framing import MAX_CHUNK_SIZE, head_end, method_is_valid, version_error


@pytest.mark.parametrize(("version", "expected"), [
    pytest.param((1, 1), None, id="1.1"),
    pytest.param((1, 0), None, id="1.0"),
    pytest.param((2, 0), errors.VersionNotSupported, id="2.0-is-505"),
    pytest.param((0, 9), errors.BadRequest, id="0.9"),
    pytest.param((1, 2), errors.BadRequest, id="1.2-as-llhttp-says"),
    pytest.param((3, 0), errors.BadRequest, id="3.0-as-llhttp-says"),
    pytest.param((1, 9), errors.BadRequest, id="1.9"),
])
def test_version_error(version: tuple[int, int], expected: type | None) -> None:
    error = version_error(version)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error.proxy_status is None and error.closes_connection


@pytest.mark.parametrize(("method", "valid"), [
    pytest.param(b"GET", True, id="GET"),
    pytest.param(b"M-SEARCH", True, id="dash"),
    pytest.param(b"PROPFIND", True, id="webdav"),
    pytest.param(b"get", False, id="lower"),
    pytest.param(b"Post", False, id="mixed"),
    pytest.param(b"DELETe", False, id="one-lower"),
])
def test_method_case(method: bytes, valid: bool) -> None:
    assert method_is_valid(method) is valid


def test_chunk_size_bound_is_64_bits() -> None:
    assert MAX_CHUNK_SIZE == int("f" * 16, 16)
    assert int("1" + "0" * 18, 16) > MAX_CHUNK_SIZE  # the 72-bit size of the report


def _ends(carry: bytes, data: bytes) -> list[int]:
    """Every end `head_end` finds in `data`, one after the other."""
    ends, start = [], 0
    while (end := head_end(carry, data, start)) != -1:
        ends.append(end)
        start = end
    return ends


@pytest.mark.parametrize(("carry", "data", "ends"), [
    pytest.param(b"", b"", [], id="empty"),
    pytest.param(b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", [27], id="one-head-at-the-end"),
    pytest.param(b"", b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", [19, 38], id="pipelined"),
    pytest.param(b"", b"GET /a HTTP/1.1\r\nHost: x\r\n", [], id="head-not-complete"),
    pytest.param(b"x\r\n", b"\r\nGET", [2], id="end-split-after-two"),
    pytest.param(b"\r\n\r", b"\nGET", [1], id="end-split-after-three"),
    pytest.param(b"x\r\n", b"\r", [], id="end-not-complete-yet"),
    pytest.param(b"\r\n\r", b"\n\r\n", [1], id="no-overlap"),
    pytest.param(b"", b"\r\n\r\n", [4], id="bare-empty-line"),
])
def test_head_end(carry: bytes, data: bytes, ends: list[int]) -> None:
    assert _ends(carry, data) == ends


def test_head_end_splits_a_stream_the_same_however_it_is_read() -> None:
    """Fed in pieces of any size, with the carry, the ends found are those of the whole stream."""
    stream = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /c HTTP/1.1\r\n\r\n")
    whole = _ends(b"", stream)
    assert len(whole) == 3
    for size in range(1, 12):
        found, carry = [], b""
        for offset in range(0, len(stream), size):
            piece = stream[offset:offset + size]
            found += [offset + end for end in _ends(carry, piece)]
            carry = (carry + piece)[-3:]
        assert found == whole, size
