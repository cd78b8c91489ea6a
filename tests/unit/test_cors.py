"""core.cors: which origins may read a route's errors, and the headers that say so."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.core import cors
from proxy.core.settings import Cors

APP = "https://app.example.com"
LISTED = Cors(allow_origins=(APP, "http://localhost:5173", "https://*.example.org"))
ANY = Cors(allow_origins=("*",))
EXPOSED = "X-Request-ID, ETag, Retry-After, Proxy-Status"


@pytest.mark.parametrize(
    "settings, origin, expected",
    [
        pytest.param(LISTED, APP, True, id="listed"),
        pytest.param(LISTED, "http://localhost:5173", True, id="listed-with-port"),
        pytest.param(LISTED, "http://localhost:5174", False, id="another-port"),
        pytest.param(LISTED, "http://app.example.com", False, id="another-scheme"),
        pytest.param(LISTED, "https://app.example.com.evil.test", False, id="suffix-attack"),
        pytest.param(LISTED, "https://evilapp.example.com", False, id="prefix-attack"),
        pytest.param(LISTED, "https://a.example.org", True, id="wildcard-subdomain"),
        pytest.param(LISTED, "https://a.b.example.org", True, id="wildcard-deeper"),
        pytest.param(LISTED, "https://example.org", False, id="wildcard-not-the-apex"),
        pytest.param(LISTED, "https://a.example.org:8443", False, id="wildcard-another-port"),
        pytest.param(LISTED, "https://x:1.example.org", False, id="wildcard-port-smuggled"),
        pytest.param(LISTED, "https://evil.test/.example.org", False, id="wildcard-path-smuggled"),
        pytest.param(LISTED, "null", False, id="null-origin"),
        pytest.param(LISTED, None, False, id="no-origin"),
        pytest.param(LISTED, "", False, id="empty-origin"),
        pytest.param(ANY, "https://anything.test", True, id="any"),
        pytest.param(ANY, "null", True, id="any-null"),
        pytest.param(ANY, None, False, id="any-but-no-origin"),
    ],
)
def test_allowed(settings, origin, expected):
    assert cors.allowed(settings, origin) is expected


@pytest.mark.parametrize(
    "settings, origin, expected",
    [
        pytest.param(LISTED, APP, [("Access-Control-Allow-Origin", APP), ("Access-Control-Expose-Headers", EXPOSED)],
                     id="echoed"),
        pytest.param(Cors(allow_origins=(APP,), allow_credentials=True), APP,
                     [("Access-Control-Allow-Origin", APP), ("Access-Control-Allow-Credentials", "true"),
                      ("Access-Control-Expose-Headers", EXPOSED)], id="credentials"),
        pytest.param(ANY, "https://x.test", [("Access-Control-Allow-Origin", "*"),
                                             ("Access-Control-Expose-Headers", EXPOSED)], id="any-is-star"),
        pytest.param(Cors(allow_origins=(APP,), expose_headers=("X-Trace", "etag", "Link")), APP,
                     [("Access-Control-Allow-Origin", APP),
                      ("Access-Control-Expose-Headers", EXPOSED + ", X-Trace, Link")], id="configured-exposed"),
        pytest.param(LISTED, "https://evil.test", [], id="disallowed"),
        pytest.param(LISTED, None, [], id="same-origin"),
    ],
)
def test_error_headers(settings, origin, expected):
    assert cors.error_headers(settings, origin) == expected


@pytest.mark.parametrize(
    "kept, origin, expected",
    [
        pytest.param([], APP, [("Access-Control-Allow-Origin", APP), ("Access-Control-Expose-Headers", EXPOSED),
                               ("Vary", "Origin")], id="none-kept"),
        pytest.param([("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
                      ("Access-Control-Expose-Headers", "X-Upstream"), ("ETag", '"v7"')], APP,
                     [("ETag", '"v7"'), ("Access-Control-Allow-Origin", APP),
                      ("Access-Control-Expose-Headers", EXPOSED), ("Vary", "Origin")], id="the-route-wins"),
        pytest.param([("Access-Control-Allow-Origin", "https://evil.test")], "https://evil.test",
                     [("Vary", "Origin")], id="upstream-cors-dropped-for-a-disallowed-origin"),
        pytest.param([("Vary", "Accept-Encoding, Origin")], None, [("Vary", "Accept-Encoding, Origin")],
                     id="vary-origin-once"),
        pytest.param([("Vary", "*")], None, [("Vary", "*")], id="vary-star-covers-it"),
    ],
)
def test_apply(kept, origin, expected):
    headers = CIMultiDict(kept)
    cors.apply(headers, LISTED, origin)
    assert list(headers.items()) == expected


@pytest.mark.parametrize(
    "method, headers, expected",
    [
        pytest.param("OPTIONS", {"Origin": APP, "Access-Control-Request-Method": "PUT"}, True, id="preflight"),
        pytest.param("OPTIONS", {"Origin": APP}, False, id="options-without-request-method"),
        pytest.param("OPTIONS", {"Access-Control-Request-Method": "PUT"}, False, id="no-origin"),
        pytest.param("GET", {"Origin": APP, "Access-Control-Request-Method": "PUT"}, False, id="not-options"),
        pytest.param("OPTIONS", {"Origin": "", "Access-Control-Request-Method": "PUT"}, False, id="empty-origin"),
    ],
)
def test_is_preflight(method, headers, expected):
    assert cors.is_preflight(method, CIMultiDict(headers)) is expected


VARY = ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")


@pytest.mark.parametrize(
    "settings, origin, request_headers, expected",
    [
        pytest.param(LISTED, APP, "Content-Type, X-CSRF-Token", [
            ("Access-Control-Allow-Origin", APP),
            ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
            ("Access-Control-Allow-Headers", "Content-Type, X-CSRF-Token"),
            ("Access-Control-Max-Age", "600"), VARY], id="echoes-requested-headers"),
        pytest.param(Cors(allow_origins=(APP,), allow_credentials=True, allow_methods=("GET", "PUT"),
                          allow_headers=("Content-Type",), max_age=7200), APP, "X-Other", [
            ("Access-Control-Allow-Origin", APP), ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Allow-Methods", "GET, PUT"), ("Access-Control-Allow-Headers", "Content-Type"),
            ("Access-Control-Max-Age", "7200"), VARY], id="configured"),
        pytest.param(LISTED, APP, None, [
            ("Access-Control-Allow-Origin", APP),
            ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
            ("Access-Control-Max-Age", "600"), VARY], id="no-headers-asked"),
        pytest.param(LISTED, APP, "x\r\nSet-Cookie: a=b", [
            ("Access-Control-Allow-Origin", APP),
            ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
            ("Access-Control-Max-Age", "600"), VARY], id="hostile-names-not-echoed"),
        pytest.param(LISTED, APP, "a," * 600, [
            ("Access-Control-Allow-Origin", APP),
            ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
            ("Access-Control-Max-Age", "600"), VARY], id="too-many-names-not-echoed"),
        pytest.param(LISTED, "https://evil.test", "Content-Type", [VARY], id="disallowed-gets-no-allow-headers"),
    ],
)
def test_preflight(settings, origin, request_headers, expected):
    assert cors.preflight(settings, origin, request_headers) == expected
