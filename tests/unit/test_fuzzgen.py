"""The request-front fuzz's own parts: the cases it generates and how it reads the answers.

The fuzz (tests/functional/test_front_fuzz.py, bench/fuzz_front.py) is only as good as
these: cases that reproduce from their seed and cover what they claim, and a judge that
tells whole responses from garbage and a 5xx from a 505.
"""

from __future__ import annotations

import pytest

from bench.fuzzrun import judge, log_problems
from bench.fuzzgen import Case, generate, statuses

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize("answer, expected", [
    pytest.param(b"", ([], None), id="nothing"),
    pytest.param(OK, ([200], None), id="one"),
    pytest.param(OK + OK, ([200, 200], None), id="two-pipelined"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, ([100, 200], None), id="interim"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + OK, ([200, 200], None), id="head-then-get"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", ([200], None), id="head-last"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + OK, ([200, 200], None),
                 id="chunked"),
    pytest.param(b"HTTP/1.0 200 OK\r\n\r\nuntil the close", ([200], None), id="read-to-close"),
    pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n" + OK, ([204, 200], None), id="no-content"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", ([200], "the body is 2 bytes, Content-Length said 5"),
                 id="short-body"),
    pytest.param(OK + b"junk", ([200], "not a response at byte 40: b'junk'"), id="junk-after"),
    pytest.param(b"HTTP/0.9 200 OK\r\n\r\n", ([], "not a response at byte 0: b'HTTP/0.9 200 OK\\r\\n\\r\\n'"),
                 id="not-http-1"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", ([], "not a response at byte 0: b'HTTP/1.1 200 OK\\r\\nContent-Le'"),
                 id="cut-head"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n", ([200], "a chunk shorter than its size line said"),
                 id="bad-chunk"),
])
def test_statuses_reads_whole_responses_and_says_where_the_rest_is_not(answer, expected):
    assert statuses(answer) == expected


@pytest.mark.parametrize("answer, closed, ending, failures", [
    pytest.param(OK, True, "read", [], id="fine"),
    pytest.param(OK.replace(b"200 OK", b"505 HTTP Version Not Supported"), True, "read", [], id="505-is-meant"),
    pytest.param(OK.replace(b"200 OK", b"500 Internal Server Error"), True, "read", ["status 500"], id="500"),
    pytest.param(OK.replace(b"200 OK", b"502 Bad Gateway"), True, "read", ["status 502"], id="502"),
    pytest.param(b"", False, "read", ["the proxy kept the connection open past the cap"], id="hang"),
    pytest.param(b"garbage", True, "read", ["garbled answer: not a response at byte 0: b'garbage'"], id="garbled"),
    pytest.param(b"", True, "abort", [], id="aborted-unread"),
])
def test_judge_fails_a_5xx_but_505_garbage_and_a_hang(answer, closed, ending, failures):
    assert judge(Case(1, (b"GET / HTTP/1.1\r\n\r\n",), ending), answer, closed).failures == failures


def test_a_case_is_its_seed():
    assert generate(12345) == generate(12345)
    assert generate(12345) != generate(12346)


def test_the_cases_hold_what_the_fuzz_claims_to_send():
    cases = [generate(seed) for seed in range(1500)]
    data = [case.data for case in cases]

    def share(test) -> float:
        return sum(map(test, data)) / len(data)

    assert share(lambda d: d.startswith(b"GET / HTTP/1.1\r\nHost: x\r\n")) > 0.01  # plain requests too
    assert share(lambda d: b"Transfer-Encoding: chunked" in d) > 0.1
    assert share(lambda d: b"CONNECT " in d) > 0.001
    assert share(lambda d: b"Upgrade: websocket" in d) > 0.01
    assert share(lambda d: b"HTTP/2.0" in d) > 0.001
    assert share(lambda d: b"\n " in d or b"\r\n\t" in d) > 0.001  # obs-fold
    assert sum(case.pipelined > 1 for case in cases) > 200
    assert sum(len(case.parts) > 1 for case in cases) > 200
    assert {case.ending for case in cases} == {"read", "close", "abort"}


def test_log_problems_finds_what_nobody_handled():
    log = "INFO fine\nTraceback (most recent call last):\nERROR Unhandled exception in x\nINFO done"
    assert log_problems(log) == ["Traceback (most recent call last):", "ERROR Unhandled exception in x"]
