"""`rewrite` remembers its decisions: the same upstream error is worked out once, and only the
request's own members differ from one answer to the next."""

from __future__ import annotations

import logging
import re

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.core import rewrite as rewrite_module
from proxy.core.rewrite import rewrite
from proxy.core.settings import ErrorPolicy, ErrorRule
from proxy.core.status import StatusSet

BODY = b'{"error": {"message": "Version conflict: document 42 was modified"}, "currentVersion": 7}'


def headers(**fields: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", **fields}))


def test_the_same_error_gets_the_same_problem_with_the_request_s_own_members(monkeypatch) -> None:
    calls = []
    decide = rewrite_module._decide
    monkeypatch.setattr(rewrite_module, "_decide", lambda *a, **k: calls.append(1) or decide(*a, **k))
    policy = ErrorPolicy()
    first = rewrite(policy, 409, headers(ETag='"v7"'), BODY, instance="/a", request_id="r1")
    first.extensions["trace_id"] = "t1"  # as the handler adds it: never seen by the next answer
    second = rewrite(policy, 409, headers(ETag='"v7"'), BODY, instance="/b", request_id="r2")
    assert len(calls) == 1
    assert (second.instance, second.request_id) == ("/b", "r2")
    assert second.extensions == {"currentVersion": 7, "current_etag": '"v7"'}
    assert (second.title, second.detail) == (first.title, first.detail) == (
        "Conflict", "Version conflict: document 42 was modified")


def test_what_the_decision_reads_is_part_of_what_is_remembered() -> None:
    """Another ETag, status, body or a header a rule matches on is another decision."""
    rule = ErrorRule(status=StatusSet(((409, 409),)), header_matches=(("X-Legacy", re.compile("yes")),),
                     detail="Legacy conflict.")
    policy = ErrorPolicy(rules=(rule,))
    assert "X-Legacy" in policy.read_headers
    v7 = rewrite(policy, 409, headers(ETag='"v7"'), BODY, instance=None, request_id="r")
    v8 = rewrite(policy, 409, headers(ETag='"v8"'), BODY, instance=None, request_id="r")
    legacy = rewrite(policy, 409, headers(ETag='"v8"', **{"X-Legacy": "yes"}), BODY, instance=None, request_id="r")
    other = rewrite(policy, 409, headers(ETag='"v8"'), BODY.replace(b"42", b"43"), instance=None, request_id="r")
    assert (v7.extensions["current_etag"], v8.extensions["current_etag"]) == ('"v7"', '"v8"')
    assert legacy.detail == "Legacy conflict." and v8.detail != legacy.detail
    assert "43" in other.detail
    assert rewrite(policy, 200, headers(), BODY, instance=None, request_id="r") is None


def test_a_scrubbed_body_is_worked_out_and_logged_every_time(caplog) -> None:
    body = b'{"message": "Traceback (most recent call last):\\n  File \\"/app/x.py\\", line 3"}'
    policy = ErrorPolicy()
    with caplog.at_level(logging.WARNING, logger="errorproxy.intercept"):
        for request_id in ("r1", "r2"):
            problem = rewrite(policy, 500, headers(), body, instance=None, request_id=request_id)
            assert "Traceback" not in problem.detail
    assert [record.getMessage().count(f"request_id={rid}") for record, rid in zip(caplog.records, ("r1", "r2"))] == [1, 1]


def test_the_oldest_decision_goes_first() -> None:
    decisions = rewrite_module._Decisions(size=2)
    policy = ErrorPolicy()
    for index in range(3):
        decisions.put(policy, (index,), None)
    assert decisions.get(policy, (0,)) is rewrite_module._UNKNOWN
    assert decisions.get(policy, (2,)) is None
    assert decisions.get(ErrorPolicy(), (2,)) is rewrite_module._UNKNOWN  # another policy's: not this one's
