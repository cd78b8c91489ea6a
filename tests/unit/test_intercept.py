"""intercept: decoding, parsing, rule selection and normalization of upstream errors."""

from __future__ import annotations

import gzip
import json
import re
import zlib

import brotli
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.core.rewrite import Parsed, UpstreamReply, decode_body, normalize, parse, select_rule, success_false, rewrite
from proxy.core.pointer import MISSING
from proxy.core.problem import DEFAULT_DETAILS
from proxy.core.settings import ErrorPolicy, ErrorRule, SuccessFalse
from proxy.core.status import StatusSet, reason

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/orders.py", line 12, in save\n'
    "    raise ConflictError(order_id)\n"
    "ConflictError: 42"
)
TEXT = b"The quick brown fox jumps over the lazy dog. " * 20  # 900 bytes
CAP = 64 * 1024


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def reply(status: int = 500, body: bytes | str | None = b"", content_type: str | None = "application/json",
          **headers: str) -> UpstreamReply:
    incoming = CIMultiDict({name.replace("_", "-"): value for name, value in headers.items()})
    if content_type is not None:
        incoming["Content-Type"] = content_type
    if isinstance(body, str):
        body = body.encode()
    return UpstreamReply(status, CIMultiDictProxy(incoming), body)


def rule(status="5xx", **fields) -> ErrorRule:
    if isinstance(fields.get("body_matches"), str):
        fields["body_matches"] = re.compile(fields["body_matches"])
    fields["header_matches"] = tuple((name, re.compile(p)) for name, p in fields.get("header_matches", ()))
    return ErrorRule(status=StatusSet.parse(status if isinstance(status, list) else [status]), **fields)


def problem_for(upstream: UpstreamReply, matched: ErrorRule | None = None, policy: ErrorPolicy = ErrorPolicy(),
                **kwargs):
    kwargs.setdefault("instance", "/documents/42")
    kwargs.setdefault("request_id", "rid-1")
    return normalize(policy, upstream, parse(upstream, upstream.body), matched, **kwargs)


# --- decode_body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoding", "expected"),
    [
        pytest.param(TEXT, "", TEXT, id="no-encoding"),
        pytest.param(TEXT, "identity", TEXT, id="identity"),
        pytest.param(TEXT, " Identity ", TEXT, id="identity-case-and-space"),
        pytest.param(None, "gzip", None, id="none-stays-none"),
        pytest.param(gzip.compress(TEXT), "gzip", TEXT, id="gzip"),
        pytest.param(gzip.compress(TEXT), "x-gzip", TEXT, id="x-gzip"),
        pytest.param(gzip.compress(TEXT), "GZIP", TEXT, id="gzip-upper-case"),
        pytest.param(zlib.compress(TEXT), "deflate", TEXT, id="deflate-zlib-wrapped"),
        pytest.param(_raw_deflate(TEXT), "deflate", TEXT, id="deflate-raw"),
        pytest.param(brotli.compress(TEXT), "br", TEXT, id="brotli"),
        pytest.param(gzip.compress(b"\0" * (10 * CAP)), "gzip", None, id="gzip-bomb-over-cap"),
        pytest.param(zlib.compress(b"\0" * (10 * CAP)), "deflate", None, id="deflate-bomb-over-cap"),
        pytest.param(brotli.compress(b"\0" * (10 * CAP)), "br", None, id="brotli-bomb-over-cap"),
        pytest.param(gzip.compress(b"a" * CAP), "gzip", b"a" * CAP, id="gzip-exactly-cap"),
        pytest.param(gzip.compress(b"a" * (CAP + 1)), "gzip", None, id="gzip-one-past-cap"),
        pytest.param(brotli.compress(b"a" * CAP), "br", b"a" * CAP, id="brotli-exactly-cap"),
        pytest.param(brotli.compress(b"a" * (CAP + 1)), "br", None, id="brotli-one-past-cap"),
        pytest.param(b"this is not gzip at all", "gzip", None, id="corrupt-gzip"),
        pytest.param(b"\x78\x9c not zlib", "deflate", None, id="corrupt-deflate"),
        pytest.param(b"this is not brotli", "br", None, id="corrupt-brotli"),
        pytest.param(gzip.compress(TEXT)[:40], "gzip", None, id="truncated-gzip"),
        pytest.param(zlib.compress(TEXT)[:40], "deflate", None, id="truncated-deflate"),
        pytest.param(brotli.compress(TEXT)[:-4], "br", None, id="truncated-brotli"),
        pytest.param(TEXT, "compress", None, id="unknown-encoding"),
        pytest.param(gzip.compress(TEXT), "gzip, br", None, id="stacked-encodings-unsupported"),
    ],
)
def test_decode_body(raw, encoding, expected):
    assert decode_body(raw, encoding, CAP) == expected


# --- parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "text", "document"),
    [
        pytest.param("café".encode("latin-1"), "text/plain; charset=ISO-8859-1", "café", MISSING, id="latin-1"),
        pytest.param("café".encode(), 'text/plain; charset="utf-8"', "café", MISSING, id="quoted-charset"),
        pytest.param("café".encode(), "text/plain;charset=", "café", MISSING, id="empty-charset-is-utf8"),
        pytest.param("café".encode(), "text/plain; charset=no-such-codec", "café", MISSING, id="unknown-charset-is-utf8"),
        pytest.param("café".encode(), "text/plain; charset=rot13", "café", MISSING, id="non-text-codec-is-utf8"),
        pytest.param(b"caf\xff", "text/plain", "caf\ufffd", MISSING, id="bad-utf8-replaced"),
        pytest.param("é".encode("utf-16-le"), "text/plain; Charset=UTF-16LE", "é", MISSING, id="utf16-param-name-case"),
        pytest.param(b'{"a": 1}', "application/json", '{"a": 1}', {"a": 1}, id="json-media-type"),
        pytest.param(b'{"a": 1}', "application/problem+json", '{"a": 1}', {"a": 1}, id="problem-json"),
        pytest.param(b'{"a": 1}', "application/vnd.api+json", '{"a": 1}', {"a": 1}, id="vendor-json"),
        pytest.param(b'{"a": 1}', "Application/JSON; charset=utf-8", '{"a": 1}', {"a": 1}, id="json-media-type-case"),
        pytest.param(b"[1, 2]", "application/json", "[1, 2]", [1, 2], id="json-array"),
        pytest.param(b"null", "application/json", "null", None, id="json-null-by-media-type"),
        pytest.param(b'{"a": 1}', "text/plain", '{"a": 1}', {"a": 1}, id="leading-brace-text-plain"),
        pytest.param(b'  \n{"a": 1}', "text/html", '  \n{"a": 1}', {"a": 1}, id="leading-space-then-brace"),
        pytest.param(b'[{"a": 1}]', None, '[{"a": 1}]', [{"a": 1}], id="leading-bracket-no-content-type"),
        pytest.param(b"null", "text/plain", "null", MISSING, id="json-literal-without-json-type-is-text"),
        pytest.param(b"42", "text/plain", "42", MISSING, id="number-without-json-type-is-text"),
        pytest.param(b'{"a": 1', "application/json", '{"a": 1', MISSING, id="invalid-json"),
        pytest.param(b"{not json}", "text/plain", "{not json}", MISSING, id="brace-but-not-json"),
        pytest.param(b"", "application/json", "", MISSING, id="empty-json-body"),
        pytest.param(b"Conflict", "application/json", "Conflict", MISSING, id="json-type-plain-body"),
        pytest.param(b"[" * 50_000, "application/json", "[" * 50_000, MISSING, id="nested-too-deep"),
    ],
)
def test_parse(body, content_type, text, document):
    upstream = reply(body=body, content_type=content_type)
    parsed = parse(upstream, body)
    assert parsed.text == text
    if document is MISSING:
        assert parsed.document is MISSING
    else:
        assert parsed.document == document


def test_parse_without_body():
    parsed = parse(reply(body=None), None)
    assert (parsed.text, parsed.document) == ("", MISSING)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param("Application/Problem+JSON; charset=utf-8", "application/problem+json", id="case-and-params"),
        pytest.param(" text/html ", "text/html", id="spaces"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_media_type(content_type, expected):
    assert reply(content_type=content_type).media_type == expected


# --- select_rule ---------------------------------------------------------------------------

FIRST = rule("5xx", title="first")
SECOND = rule(500, title="second")
BODY_RULE = rule(500, body_matches="OptimisticLock|duplicate key", title="body")
JSON_RULE = rule(500, json_equals=(("/error/code", "CONFLICT"), ("/retryable", False)), title="json")
HEADER_RULE = rule(503, header_matches=(("X-Maintenance", "^(?:on|yes)$"),), title="header")
RANGE_RULE = rule("420-429", title="range")
CLASS_RULE = rule(["4xx", 500], title="class")


@pytest.mark.parametrize(
    ("rules", "upstream", "expected"),
    [
        pytest.param((FIRST, SECOND), reply(500), FIRST, id="first-match-wins"),
        pytest.param((SECOND, FIRST), reply(500), SECOND, id="order-decides"),
        pytest.param((SECOND, FIRST), reply(502), FIRST, id="status-skips-to-second"),
        pytest.param((SECOND,), reply(404), None, id="no-status-match"),
        pytest.param((), reply(500), None, id="no-rules"),
        pytest.param((RANGE_RULE,), reply(429), RANGE_RULE, id="range-high-end"),
        pytest.param((RANGE_RULE,), reply(420), RANGE_RULE, id="range-low-end"),
        pytest.param((RANGE_RULE,), reply(430), None, id="range-outside"),
        pytest.param((CLASS_RULE,), reply(404), CLASS_RULE, id="class-in-set"),
        pytest.param((CLASS_RULE,), reply(500), CLASS_RULE, id="single-in-set"),
        pytest.param((CLASS_RULE,), reply(501), None, id="not-in-set"),
        # body_matches searches the decoded text anywhere.
        pytest.param((BODY_RULE, SECOND), reply(500, "ERROR: duplicate key value violates", "text/plain"),
                     BODY_RULE, id="body-matches"),
        pytest.param((BODY_RULE, SECOND), reply(500, '{"e": "OptimisticLockException"}'), BODY_RULE,
                     id="body-matches-json-text"),
        pytest.param((BODY_RULE, SECOND), reply(500, "disk full", "text/plain"), SECOND, id="body-does-not-match"),
        pytest.param((BODY_RULE,), reply(500, None), None, id="body-unread-does-not-match"),
        # json_equals: every pair must hold, with JSON's equality.
        pytest.param((JSON_RULE, SECOND), reply(500, '{"error": {"code": "CONFLICT"}, "retryable": false}'),
                     JSON_RULE, id="json-equals-all-pairs"),
        pytest.param((JSON_RULE, SECOND), reply(500, '{"error": {"code": "CONFLICT"}, "retryable": true}'),
                     SECOND, id="json-equals-one-pair-differs"),
        pytest.param((JSON_RULE, SECOND), reply(500, '{"error": {"code": "CONFLICT"}}'), SECOND,
                     id="json-equals-pointer-missing"),
        pytest.param((JSON_RULE, SECOND), reply(500, '{"error": {"code": "CONFLICT"}, "retryable": 0}'), SECOND,
                     id="json-equals-zero-is-not-false"),
        pytest.param((JSON_RULE, SECOND), reply(500, "CONFLICT", "text/plain"), SECOND, id="json-equals-not-json"),
        pytest.param((rule(500, json_equals=(("/code", 1),)),), reply(500, '{"code": true}'), None,
                     id="json-equals-true-is-not-one"),
        pytest.param((rule(500, json_equals=(("/code", 1),)),), reply(500, '{"code": 1.0}'), "matched",
                     id="json-equals-number-forms"),
        pytest.param((rule(500, json_equals=(("/tags", ["a", False]),)),), reply(500, '{"tags": ["a", 0]}'), None,
                     id="json-equals-nested-false-is-not-zero"),
        pytest.param((rule(500, json_equals=(("/v", None),)),), reply(500, '{"v": null}'), "matched",
                     id="json-equals-null"),
        pytest.param((rule(500, json_equals=(("/v", None),)),), reply(500, "{}"), None,
                     id="json-equals-null-is-not-missing"),
        # header_matches: names are case-insensitive, values searched by regex.
        pytest.param((HEADER_RULE,), reply(503, x_maintenance="on"), HEADER_RULE, id="header-matches"),
        pytest.param((HEADER_RULE,), reply(503, X_MAINTENANCE="yes"), HEADER_RULE, id="header-name-case"),
        pytest.param((HEADER_RULE,), reply(503, x_maintenance="off"), None, id="header-value-differs"),
        pytest.param((HEADER_RULE,), reply(503), None, id="header-absent"),
        pytest.param((HEADER_RULE,), reply(500, x_maintenance="on"), None, id="header-but-wrong-status"),
    ],
)
def test_select_rule(rules, upstream, expected):
    chosen = select_rule(ErrorPolicy(rules=rules), upstream, parse(upstream, upstream.body))
    if expected == "matched":
        assert chosen is rules[0]
    else:
        assert chosen is expected


# --- normalize -----------------------------------------------------------------------------

DEFAULT_409 = DEFAULT_DETAILS[409]
DEFAULT_500 = DEFAULT_DETAILS[500]


@pytest.mark.parametrize(
    ("upstream", "detail"),
    [
        pytest.param(reply(500, '{"detail": "d", "message": "m", "error": "e"}'), "d", id="detail-first"),
        pytest.param(reply(500, '{"message": "m", "error": {"message": "em"}}'), "m", id="message-second"),
        pytest.param(reply(500, '{"error": {"message": "em"}, "errors": [{"message": "e0"}]}'), "em",
                     id="error-message-third"),
        pytest.param(reply(500, '{"error": "e", "errors": [{"message": "e0"}]}'), "e", id="error-string-fourth"),
        pytest.param(reply(500, '{"errors": [{"message": "e0"}, {"message": "e1"}]}'), "e0", id="errors-0-message"),
        pytest.param(reply(500, '{"error_description": "invalid_grant"}'), "invalid_grant", id="oauth-description"),
        pytest.param(reply(500, '{"message": 42, "error": "e"}'), "e", id="non-string-skipped"),
        pytest.param(reply(500, '{"message": "   ", "error": "e"}'), "e", id="blank-skipped"),
        pytest.param(reply(500, '{"message": "two\\n  lines"}'), "two lines", id="whitespace-collapsed"),
        pytest.param(reply(500, json.dumps({"message": "x" * 301, "error": "short"})), "short", id="too-long-skipped"),
        pytest.param(reply(500, '{"code": 17}'), DEFAULT_500, id="no-common-field"),
        pytest.param(reply(500, '[{"message": "m"}]'), DEFAULT_500, id="top-level-list"),
        pytest.param(reply(409, '{"error": {"code": 5}}'), DEFAULT_409, id="error-object-without-message"),
    ],
)
def test_detail_from_common_fields(upstream, detail):
    assert problem_for(upstream).detail == detail


BODY_409 = '{"error": {"message": "Version conflict"}, "reason": "Stale write", "currentVersion": 7}'


@pytest.mark.parametrize(
    ("matched", "policy", "detail"),
    [
        pytest.param(None, ErrorPolicy(), "Version conflict", id="common-fields-without-rule"),
        pytest.param(rule(409, detail="Configured."), ErrorPolicy(), "Configured.", id="rule-detail"),
        pytest.param(rule(409, detail="Configured.", detail_pointer="/reason"), ErrorPolicy(), "Configured.",
                     id="rule-detail-beats-pointer"),
        pytest.param(rule(409, detail_pointer="/reason"), ErrorPolicy(), "Stale write", id="pointer-beats-common-fields"),
        pytest.param(rule(409, detail_pointer="/nope"), ErrorPolicy(), DEFAULT_409,
                     id="pointer-missing-gives-default"),
        pytest.param(rule(409, detail_pointer="/currentVersion"), ErrorPolicy(), DEFAULT_409,
                     id="pointer-to-number-gives-default"),
        pytest.param(None, ErrorPolicy(expose_upstream_detail=False), DEFAULT_409, id="not-exposed"),
        pytest.param(rule(409), ErrorPolicy(expose_upstream_detail=False), DEFAULT_409, id="not-exposed-with-rule"),
        pytest.param(rule(409, detail="Configured."), ErrorPolicy(expose_upstream_detail=False), "Configured.",
                     id="not-exposed-rule-detail-still-used"),
        pytest.param(rule(409, detail_pointer="/reason"), ErrorPolicy(expose_upstream_detail=False), "Stale write",
                     id="not-exposed-explicit-pointer-still-used"),
    ],
)
def test_detail_precedence(matched, policy, detail):
    assert problem_for(reply(409, BODY_409), matched, policy).detail == detail


def test_not_exposed_hides_text_body():
    problem = problem_for(reply(500, "Disk quota exceeded", "text/plain"), policy=ErrorPolicy(expose_upstream_detail=False))
    assert problem.detail == DEFAULT_500


def test_409_with_etag_and_rule_extensions():
    upstream = reply(409, BODY_409, ETag='"v7"', Server="legacy/1.0")
    matched = rule(409, type="https://errors.example.com/edit-conflict", title="Edit conflict",
                   extensions=(("current_version", "/currentVersion"), ("absent", "/nope"), ("error", "/error")))
    problem = problem_for(upstream, matched)
    assert problem.to_dict() == {
        "type": "https://errors.example.com/edit-conflict",
        "title": "Edit conflict",
        "status": 409,
        "detail": "Version conflict",
        "instance": "/documents/42",
        "request_id": "rid-1",
        "current_etag": '"v7"',
        "current_version": 7,
        "error": {"message": "Version conflict"},
    }
    assert problem.proxy_status == "received-status=409"


@pytest.mark.parametrize(
    ("status", "etag", "expected"),
    [
        pytest.param(409, '"v7"', '"v7"', id="409"),
        pytest.param(412, 'W/"v7"', 'W/"v7"', id="412-weak"),
        pytest.param(428, '"v1"', '"v1"', id="428"),
        pytest.param(500, '"v7"', MISSING, id="500-no-etag-member"),
        pytest.param(404, '"v7"', MISSING, id="404-no-etag-member"),
        pytest.param(409, None, MISSING, id="409-without-etag"),
    ],
)
def test_current_etag(status, etag, expected):
    headers = {"etag": etag} if etag else {}
    problem = problem_for(reply(status, "{}", **headers))
    assert problem.extensions.get("current_etag", MISSING) == expected


def test_current_etag_follows_rewritten_status():
    problem = problem_for(reply(500, "{}", ETag='"v3"'), rule(500, rewrite_status=409))
    assert problem.extensions["current_etag"] == '"v3"'


UPSTREAM_PROBLEM = json.dumps({
    "type": "https://upstream.example/out-of-stock",
    "title": "Out of stock",
    "status": 418,
    "detail": "Only 2 left.",
    "instance": "/internal/orders/7",
    "request_id": "upstream-id",
    "available": 2,
    "sku": {"id": "A-1"},
})


def test_upstream_problem_members_kept_proxy_sets_status_instance_request_id():
    problem = problem_for(reply(422, UPSTREAM_PROBLEM, "application/problem+json"))
    assert problem.to_dict() == {
        "type": "https://upstream.example/out-of-stock",
        "title": "Out of stock",
        "status": 422,
        "detail": "Only 2 left.",
        "instance": "/documents/42",
        "request_id": "rid-1",
        "available": 2,
        "sku": {"id": "A-1"},
    }


def test_upstream_problem_rule_overrides_type_and_title():
    matched = rule(422, type="https://errors.example.com/stock", title="No stock", extensions=(("available", "/sku"),))
    problem = problem_for(reply(422, UPSTREAM_PROBLEM, "application/problem+json"), matched)
    assert (problem.type, problem.title, problem.detail) == ("https://errors.example.com/stock", "No stock", "Only 2 left.")
    assert problem.extensions["available"] == {"id": "A-1"}


def test_upstream_problem_members_not_kept_when_status_rewritten():
    problem = problem_for(reply(422, UPSTREAM_PROBLEM, "application/problem+json"), rule(422, rewrite_status=409))
    assert (problem.status, problem.type, problem.title) == (409, "about:blank", "Conflict")
    assert "available" not in problem.extensions


def test_problem_members_only_from_problem_media_type():
    problem = problem_for(reply(422, UPSTREAM_PROBLEM, "application/json"))
    assert (problem.type, problem.title, problem.status) == ("about:blank", reason(422), 422)
    assert problem.detail == "Only 2 left."  # from the common field /detail
    assert problem.extensions == {}


@pytest.mark.parametrize(
    ("upstream_status", "rewrite", "title", "expected_title"),
    [
        pytest.param(500, 409, None, "Conflict", id="500-to-409"),
        pytest.param(500, 422, None, reason(422), id="500-to-422"),
        pytest.param(400, 503, None, "Service Unavailable", id="400-to-503"),
        pytest.param(500, 409, "Edit conflict", "Edit conflict", id="rule-title-wins"),
    ],
)
def test_rewrite_status(upstream_status, rewrite, title, expected_title):
    upstream = reply(upstream_status, "OptimisticLockException on order 7", "text/plain")
    problem = problem_for(upstream, rule(upstream_status, rewrite_status=rewrite, title=title))
    assert (problem.status, problem.title) == (rewrite, expected_title)
    assert problem.proxy_status == f"received-status={upstream_status}"
    assert problem.detail == "OptimisticLockException on order 7"


def test_status_override_for_success_false():
    problem = problem_for(reply(200, '{"success": false, "message": "Name taken"}'), status=422)
    assert (problem.status, problem.title, problem.detail) == (422, reason(422), "Name taken")
    assert problem.proxy_status == "received-status=200"


@pytest.mark.parametrize(
    ("upstream", "matched"),
    [
        pytest.param(reply(500, TRACEBACK, "text/plain"), None, id="text-body"),
        pytest.param(reply(500, TRACEBACK, None), None, id="body-without-content-type"),
        pytest.param(reply(500, TRACEBACK, "text/plain; charset=utf-8"), rule(500, rewrite_status=409),
                     id="text-body-rewritten"),
        pytest.param(reply(500, f"<html><head><title>Error</title></head><body><pre>{TRACEBACK}</pre></body></html>",
                           "text/html"), None, id="html-body"),
        pytest.param(reply(500, json.dumps({"message": TRACEBACK})), None, id="json-message"),
        pytest.param(reply(500, json.dumps({"error": {"message": TRACEBACK}})), None, id="json-error-message"),
        pytest.param(reply(500, '{"message": "' + TRACEBACK.replace("\n", "\\n").replace('"', '\\"') + '"'),
                     None, id="json-that-fails-to-parse"),
        pytest.param(reply(500, json.dumps({"detail": TRACEBACK, "debug": TRACEBACK, "title": TRACEBACK}),
                           "application/problem+json"), None, id="problem-json-detail-extension-title"),
        pytest.param(reply(500, json.dumps({"type": TRACEBACK, "nested": {"frames": [TRACEBACK]}}),
                           "application/problem+json"), None, id="problem-json-type-and-nested-extension"),
        pytest.param(reply(500, json.dumps({"info": {"stack": TRACEBACK}})),
                     rule(500, detail_pointer="/info/stack", extensions=(("stack", "/info/stack"), ("info", "/info"))),
                     id="rule-pointers-to-traceback"),
    ],
)
def test_traceback_never_reaches_problem(upstream, matched):
    body = problem_for(upstream, matched).to_json().decode()
    assert "Traceback" not in body
    assert "orders.py" not in body
    assert "ConflictError" not in body
    assert json.loads(body)["detail"] in (DEFAULT_500, DEFAULT_409)


def test_traceback_elsewhere_does_not_hide_a_safe_message():
    problem = problem_for(reply(500, json.dumps({"message": "Oops", "trace": TRACEBACK})))
    assert problem.detail == "Oops"


@pytest.mark.parametrize(
    ("upstream", "detail"),
    [
        pytest.param(reply(503, "Down for maintenance until 14:00 UTC.", "text/plain"),
                     "Down for maintenance until 14:00 UTC.", id="short-text"),
        pytest.param(reply(503, "  Down\r\n\tfor  maintenance \n", "text/plain"), "Down for maintenance",
                     id="text-whitespace-collapsed"),
        pytest.param(reply(503, "Down for maintenance.", None), "Down for maintenance.", id="text-no-content-type"),
        pytest.param(reply(500, "x" * 300, "text/plain"), "x" * 300, id="text-300-chars-kept"),
        pytest.param(reply(500, "x" * 301, "text/plain"), DEFAULT_500, id="text-301-chars-dropped"),
        pytest.param(reply(500, "word " * 100, "text/plain"), DEFAULT_500, id="long-text-dropped"),
        pytest.param(reply(500, "", "text/plain"), DEFAULT_500, id="empty-text"),
        pytest.param(reply(500, "   \n", "text/plain"), DEFAULT_500, id="blank-text"),
        pytest.param(reply(500, b"\x00\x01binary", "application/octet-stream"), DEFAULT_500, id="binary-type"),
        pytest.param(reply(500, None, "text/plain"), DEFAULT_500, id="body-over-cap"),
        pytest.param(
            reply(502, "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                       "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                  "text/html"),
            "502 Bad Gateway", id="html-title"),
        pytest.param(reply(500, "<html><head><TITLE lang=en>Orders &amp; Billing down</TITLE></head></html>",
                           "text/html; charset=utf-8"), "Orders & Billing down", id="html-title-entities-and-case"),
        pytest.param(reply(500, "<html><body><h1>Oops</h1><p>Try later.</p></body></html>", "text/html"),
                     "Oops Try later.", id="html-without-title-text"),
        pytest.param(reply(500, "<html><head><title>" + "t" * 301 + "</title></head></html>", "text/html"),
                     DEFAULT_500, id="html-long-title"),
        pytest.param(reply(500, "<error><message>Disk full</message></error>", "application/xml"), "Disk full",
                     id="xml-text"),
        pytest.param(reply(500, "<html><head><title>&lt;b&gt;</title></head></html>", "text/html"),
                     "<b>", id="html-title-unescaped-once"),
    ],
)
def test_text_html_and_xml_detail(upstream, detail):
    assert problem_for(upstream).detail == detail


@pytest.mark.parametrize(
    ("status", "matched", "expected"),
    [
        pytest.param(404, None, "received-status=404", id="404"),
        pytest.param(502, None, "received-status=502", id="502"),
        pytest.param(500, rule(500, rewrite_status=409), "received-status=500", id="upstream-status-not-rewritten"),
    ],
)
def test_proxy_status(status, matched, expected):
    assert problem_for(reply(status, "{}"), matched).proxy_status == expected


def test_instance_and_request_id_from_the_proxy():
    problem = problem_for(reply(404, '{"request_id": "theirs"}'), instance="/a/b?c", request_id="ours")
    assert (problem.instance, problem.request_id) == ("/a/b?c", "ours")
    assert problem.to_dict()["request_id"] == "ours"


# --- success_false -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "pointer", "expected"),
    [
        pytest.param('{"success": false, "message": "nope"}', "/success", True, id="false"),
        pytest.param('{"success": true}', "/success", False, id="true"),
        pytest.param('{"data": 1}', "/success", False, id="missing"),
        pytest.param('{"success": 0}', "/success", False, id="zero-is-not-false"),
        pytest.param('{"success": "false"}', "/success", False, id="string-false"),
        pytest.param('{"success": null}', "/success", False, id="null"),
        pytest.param("[false]", "/success", False, id="list-document"),
        pytest.param("not json", "/success", False, id="not-json"),
        pytest.param('{"result": {"ok": false}}', "/result/ok", True, id="custom-pointer"),
        pytest.param('{"success": false}', "/result/ok", False, id="custom-pointer-elsewhere"),
    ],
)
def test_success_false(body, pointer, expected):
    upstream = reply(200, body)
    assert success_false(SuccessFalse(status=422, pointer=pointer), parse(upstream, upstream.body)) is expected


def test_success_false_without_body():
    assert success_false(SuccessFalse(status=422), Parsed("", MISSING)) is False


@pytest.mark.parametrize(("etag", "kept"), [
    pytest.param('"v7"', True, id="ascii"),
    pytest.param('"\udcff\udcfe"', False, id="obs-text-bytes"),
    pytest.param('"v7\x00"', False, id="control"),
])
def test_current_etag_only_when_json_can_carry_it(etag, kept):
    problem = rewrite(ErrorPolicy(), 409, {"ETag": etag, "Content-Type": "application/json"}, b"{}",
                      instance="/d/1", request_id="rid")
    assert problem is not None
    assert ("current_etag" in problem.extensions) is kept
    assert json.loads(problem.to_json())["status"] == 409  # serializable whatever the header held


# --- field errors and version fields, kept without a rule ----------------------------------

FASTAPI_422 = '{"detail": [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}]}'
FASTAPI_422_TWO = json.dumps({"detail": [
    {"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"},
    {"loc": ["body", "tags", 0], "msg": "str type expected", "type": "type_error.str"},
]})
DJANGO_409 = '{"error": "Document was updated by another user", "current_version": 8}'


def test_fastapi_422_keeps_its_field_errors():
    problem = problem_for(reply(422, FASTAPI_422))
    assert problem.to_dict() == {
        "type": "about:blank", "title": reason(422), "status": 422, "detail": "title: field required",
        "instance": "/documents/42", "request_id": "rid-1",
        "errors": [{"pointer": "/title", "detail": "field required"}],
    }


@pytest.mark.parametrize(
    ("upstream", "matched", "policy", "detail", "errors"),
    [
        pytest.param(reply(422, FASTAPI_422_TWO), None, ErrorPolicy(), "2 fields are invalid: title, tags.0",
                     [{"pointer": "/title", "detail": "field required"},
                      {"pointer": "/tags/0", "detail": "str type expected"}], id="summary-of-two"),
        pytest.param(reply(400, '{"errors": [{"field": "title", "message": "is blank"}]}'), None, ErrorPolicy(),
                     "title: is blank", [{"pointer": "/title", "detail": "is blank"}],
                     id="400-summary-beats-errors-0-message"),
        pytest.param(reply(422, '{"message": "The given data was invalid.", "errors": {"email": ["is taken"]}}'),
                     None, ErrorPolicy(), "The given data was invalid.", [{"pointer": "/email", "detail": "is taken"}],
                     id="upstream-message-kept"),
        pytest.param(reply(422, FASTAPI_422), rule(422, detail="Check the form."), ErrorPolicy(), "Check the form.",
                     [{"pointer": "/title", "detail": "field required"}], id="rule-detail-wins"),
        pytest.param(reply(422, FASTAPI_422), rule(422, extensions=(("errors", "/detail"),)), ErrorPolicy(),
                     "title: field required",
                     [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}],
                     id="rule-extension-named-errors-wins"),
        pytest.param(reply(422, FASTAPI_422), None, ErrorPolicy(field_errors=False), DEFAULT_DETAILS[422], MISSING,
                     id="switched-off"),
        pytest.param(reply(422, FASTAPI_422), None, ErrorPolicy(expose_upstream_detail=False), DEFAULT_DETAILS[422],
                     MISSING, id="upstream-detail-not-exposed"),
        pytest.param(reply(409, FASTAPI_422), None, ErrorPolicy(), DEFAULT_409, MISSING, id="not-on-409"),
        pytest.param(reply(500, '{"errors": {"email": ["is taken"]}}'), rule(500, rewrite_status=422), ErrorPolicy(),
                     "email: is taken", [{"pointer": "/email", "detail": "is taken"}], id="rewritten-to-422"),
        pytest.param(reply(422, '{"errors": [{"field": "title", "message": "is blank"}]}', "application/problem+json"),
                     None, ErrorPolicy(), "title: is blank", [{"pointer": "/title", "detail": "is blank"}],
                     id="upstream-problem-errors-normalized"),
        pytest.param(reply(422, '{"errors": [{"code": 17}]}', "application/problem+json"), None, ErrorPolicy(),
                     DEFAULT_DETAILS[422], [{"code": 17}], id="upstream-problem-errors-unknown-shape-kept"),
    ],
)
def test_field_errors_in_the_problem(upstream, matched, policy, detail, errors):
    problem = problem_for(upstream, matched, policy)
    assert (problem.detail, problem.extensions.get("errors", MISSING)) == (detail, errors)


def test_field_errors_through_rewrite_with_a_trace_in_one_entry():
    body = json.dumps({"errors": [{"field": "title", "message": TRACEBACK}, {"field": "body", "message": "too short"}]})
    problem = rewrite(ErrorPolicy(), 400, {"Content-Type": "application/json"}, body.encode(),
                      instance="/d/1", request_id="rid")
    assert problem is not None
    assert problem.extensions["errors"] == [{"pointer": "/body", "detail": "too short"}]
    assert "Traceback" not in problem.to_json().decode()


def test_django_409_keeps_its_version():
    problem = problem_for(reply(409, DJANGO_409))
    assert problem.to_dict() == {
        "type": "about:blank", "title": "Conflict", "status": 409, "detail": "Document was updated by another user",
        "instance": "/documents/42", "request_id": "rid-1", "current_version": 8,
    }


@pytest.mark.parametrize(
    ("status", "body", "matched", "expected"),
    [
        pytest.param(409, BODY_409, None, {"currentVersion": 7}, id="name-kept-as-sent"),
        pytest.param(412, '{"message": "stale", "_rev": "2-a1b2"}', None, {"_rev": "2-a1b2"}, id="412"),
        pytest.param(409, '{"error": {"message": "stale", "updatedAt": "2025-01-31T09:14:03Z"}}', None,
                     {"updatedAt": "2025-01-31T09:14:03Z"}, id="under-error"),
        pytest.param(409, DJANGO_409, rule(409, extensions=(("current_version", "/error"),)),
                     {"current_version": "Document was updated by another user"}, id="rule-extension-of-same-name-wins"),
        pytest.param(409, BODY_409, rule(409, extensions=(("current_version", "/currentVersion"),)),
                     {"current_version": 7}, id="rule-reading-the-same-field-renames-it"),
        pytest.param(409, BODY_409, rule(409, extensions=(("v", "/nope"),)), {"currentVersion": 7},
                     id="rule-extension-elsewhere-leaves-it"),
        pytest.param(500, DJANGO_409, rule(500, rewrite_status=409), {"current_version": 8}, id="rewritten-to-409"),
        pytest.param(422, DJANGO_409, None, {}, id="not-on-422"),
        pytest.param(409, '{"version": {"major": 2}, "rev": null}', None, {}, id="not-scalars"),
        pytest.param(409, '{"version": "/srv/app/orm.py"}', None, {}, id="unsafe"),
    ],
)
def test_version_fields(status, body, matched, expected):
    problem = problem_for(reply(status, body), matched)
    assert {key: value for key, value in problem.extensions.items() if key != "error"} == expected


@pytest.mark.parametrize("body, content_type", [
    (json.dumps({"message": "line1\nline2\u0000\u001b[31mred\u202eevil\u2066x\u2069\u0085!"}), "application/json"),
    ("line1\nline2\x00\x1b[31mred\u202eevil\u2066x\u2069\x85!", "text/plain; charset=utf-8"),
])
def test_an_upstream_detail_keeps_no_control_character_nor_reordering_mark(body, content_type):
    # NUL, a terminal escape and a right-to-left override went out as they came, in text and HTML pages.
    problem = problem_for(reply(409, body, content_type))
    assert problem.detail == "line1 line2[31mredevilx !"
