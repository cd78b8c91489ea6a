"""routing: path normalization, Host parsing, route choice, prefix stripping."""

from __future__ import annotations

import re

import pytest
from yarl import URL

from proxy.config.loader import from_text
from proxy.core.routing import Router, host_is_valid, host_name, normalize_path, split_target, strip_prefix, upstream_target
from proxy.core.settings import Match, Route, UpstreamSettings

UPSTREAM = UpstreamSettings(name="app", url=URL("http://127.0.0.1:9000"))


def route(name: str, **match: object) -> Route:
    return Route(name=name, match=Match(**match), upstream=UPSTREAM)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("/", "/", id="root"),
        pytest.param("/api/users", "/api/users", id="plain"),
        pytest.param("/api/users?id=1&x=/..", "/api/users", id="query-dropped"),
        pytest.param("/%61pi/x", "/api/x", id="percent-decoded"),
        pytest.param("/a%20b", "/a b", id="percent-space"),
        pytest.param("/caf%C3%A9", "/café", id="percent-utf8"),
        pytest.param("/a%FFb", "/a\ufffdb", id="percent-invalid-utf8-replaced"),
        pytest.param("/a%2Fb", "/a/b", id="encoded-slash-decoded"),
        pytest.param("/a/./b", "/a/b", id="dot-segment"),
        pytest.param("/a/b/../c", "/a/c", id="dotdot-segment"),
        pytest.param("/api/%761/../users", "/api/users", id="docstring-example"),
        pytest.param("/%2e%2e/etc/passwd", "/etc/passwd", id="encoded-dotdot-above-root"),
        pytest.param("/api/%2e%2e/admin", "/admin", id="encoded-dotdot-leaves-prefix"),
        pytest.param("/../../x", "/x", id="dotdot-clamped-at-root"),
        pytest.param("/a/..", "/", id="dotdot-to-root"),
        pytest.param("/.", "/", id="lone-dot"),
        pytest.param("/a/b/.", "/a/b/", id="trailing-dot-keeps-slash"),
        pytest.param("/a/b/..", "/a/", id="trailing-dotdot-keeps-slash"),
        pytest.param("/a/b/", "/a/b/", id="trailing-slash-kept"),
        pytest.param("/a/./b/", "/a/b/", id="trailing-slash-kept-with-dots"),
        pytest.param("/a//b", "/a//b", id="double-slash-kept"),
        pytest.param("//a/./b", "//a/b", id="double-slash-kept-with-dots"),
        pytest.param("/a//../b", "/a/b", id="dotdot-pops-empty-segment"),
        pytest.param("/.well-known/x", "/.well-known/x", id="dot-prefixed-name-kept"),
        pytest.param("/a/..b/c", "/a/..b/c", id="dotdot-prefixed-name-kept"),
    ],
)
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("example.com", "example.com", id="bare"),
        pytest.param("Example.COM", "example.com", id="lower-cased"),
        pytest.param("Example.COM:8080", "example.com", id="port-removed"),
        pytest.param("  example.com:80 ", "example.com", id="whitespace-stripped"),
        pytest.param("127.0.0.1:8080", "127.0.0.1", id="ipv4-port"),
        pytest.param("[::1]:80", "::1", id="ipv6-brackets-port"),
        pytest.param("[::1]", "::1", id="ipv6-brackets"),
        pytest.param("[2001:DB8::1]:443", "2001:db8::1", id="ipv6-lower-cased"),
        pytest.param("::1", "::1", id="ipv6-unbracketed-kept-whole"),
        pytest.param("Example.com.", "example.com", id="root-dot-removed"),
        pytest.param("example.com.:8080", "example.com", id="root-dot-and-port-removed"),
        pytest.param("", "", id="empty"),
        pytest.param(None, "", id="absent"),
    ],
)
def test_host_name(header: str | None, expected: str) -> None:
    assert host_name(header) == expected


@pytest.mark.parametrize("host", ["example.com", "Example.COM:8080", "example.com.", "example.com.:80", "127.0.0.1",
                                  "[::1]", "[2001:db8::1]:443", "xn--bcher-kva.example", "a_b.example", "x:",
                                  "x:99999"])
def test_host_is_valid(host: str) -> None:
    assert host_is_valid(host)


@pytest.mark.parametrize("host", ["", "a b", "a/b", "evil.com/../", "x..y", ".example.com", "x\tb", "x:abc",
                                  "x:80:80", "[::1", "::1]", 'x"><script>', "user@example.com", "exa\u00e9mple.com"])
def test_host_is_not_valid(host: str) -> None:
    assert not host_is_valid(host)


API_V1 = route("api-v1", hosts=("api.example.com",), path_prefix="/v1/", methods=frozenset({"GET", "HEAD"}))

MATCH_CASES = [
    # (routes, host, path, method, expected route name)
    pytest.param((), "example.com", "/", "GET", None, id="no-routes"),
    pytest.param((route("a", hosts=("example.com",)),), "example.com", "/x", "GET", "a", id="host-exact"),
    pytest.param((route("a", hosts=("example.com",)),), "www.example.com", "/x", "GET", None, id="host-exact-not-subdomain"),
    pytest.param((route("a", hosts=("example.com",)),), "", "/x", "GET", None, id="host-required-but-absent"),
    pytest.param((route("w", hosts=("*.example.com",)),), "api.example.com", "/", "GET", "w", id="wildcard-subdomain"),
    pytest.param((route("w", hosts=("*.example.com",)),), "a.b.example.com", "/", "GET", "w", id="wildcard-deep-subdomain"),
    pytest.param((route("w", hosts=("*.example.com",)),), "example.com", "/", "GET", None, id="wildcard-not-apex"),
    pytest.param((route("w", hosts=("*.example.com",)),), "badexample.com", "/", "GET", None, id="wildcard-not-suffix-lookalike"),
    pytest.param((route("w", hosts=("*.example.com",)),), ".example.com", "/", "GET", None, id="wildcard-not-empty-label"),
    pytest.param((route("w", hosts=("*.example.com",)),), "example.com.evil.test", "/", "GET", None, id="wildcard-not-prefix"),
    pytest.param(
        (route("both", hosts=("example.com", "*.example.com")),), "example.com", "/", "GET", "both",
        id="host-list-any-matches",
    ),
    pytest.param((route("p", path_prefix="/api/"),), "h", "/api/users", "GET", "p", id="prefix"),
    pytest.param((route("p", path_prefix="/api/"),), "h", "/api/", "GET", "p", id="prefix-exact"),
    pytest.param((route("p", path_prefix="/api/"),), "h", "/api", "GET", None, id="prefix-without-slash"),
    pytest.param((route("p", path_prefix="/api/"),), "h", "/apix/users", "GET", None, id="prefix-lookalike"),
    pytest.param((route("p", path_prefix="/api/"),), "h", "/API/users", "GET", None, id="prefix-case-sensitive"),
    pytest.param((route("r", path_regex=re.compile(r"^/users/\d+$")),), "h", "/users/42", "GET", "r", id="regex"),
    pytest.param((route("r", path_regex=re.compile(r"^/users/\d+$")),), "h", "/users/me", "GET", None, id="regex-miss"),
    pytest.param((route("r", path_regex=re.compile(r"\.json$")),), "h", "/a/b.json", "GET", "r", id="regex-searches"),
    pytest.param((route("m", methods=frozenset({"GET", "HEAD"})),), "h", "/", "HEAD", "m", id="method"),
    pytest.param((route("m", methods=frozenset({"GET", "HEAD"})),), "h", "/", "POST", None, id="method-miss"),
    pytest.param((API_V1,), "api.example.com", "/v1/users", "GET", "api-v1", id="all-conditions-hold"),
    pytest.param((API_V1,), "www.example.com", "/v1/users", "GET", None, id="all-but-host"),
    pytest.param((API_V1,), "api.example.com", "/v2/users", "GET", None, id="all-but-prefix"),
    pytest.param((API_V1,), "api.example.com", "/v1/users", "DELETE", None, id="all-but-method"),
    pytest.param(
        (route("p", path_prefix="/api/", path_regex=re.compile(r"/\d+$")),), "h", "/api/7", "GET", "p",
        id="prefix-and-regex",
    ),
    pytest.param(
        (route("p", path_prefix="/api/", path_regex=re.compile(r"/\d+$")),), "h", "/other/7", "GET", None,
        id="regex-alone-not-enough",
    ),
    pytest.param(
        (route("general", path_prefix="/"), route("specific", path_prefix="/api/")), "h", "/api/x", "GET", "general",
        id="first-wins-general-first",
    ),
    pytest.param(
        (route("specific", path_prefix="/api/"), route("general", path_prefix="/")), "h", "/api/x", "GET", "specific",
        id="first-wins-specific-first",
    ),
    pytest.param(
        (route("specific", path_prefix="/api/"), route("general", path_prefix="/")), "h", "/web", "GET", "general",
        id="falls-through-to-later",
    ),
    pytest.param(
        (route("writes", methods=frozenset({"POST"})), route("reads", methods=frozenset({"GET"}))), "h", "/", "GET",
        "reads", id="skips-failing-route",
    ),
]


@pytest.mark.parametrize(("routes", "host", "path", "method", "expected"), MATCH_CASES)
def test_router_match(routes: tuple[Route, ...], host: str, path: str, method: str, expected: str | None) -> None:
    found = Router(routes).match(host, path, method)
    assert (found.name if found is not None else None) == expected


CONFIG = """
upstreams:
  app: http://127.0.0.1:9000
routes:
  - name: api
    match: {path_prefix: /api/}
    upstream: app
    strip_prefix: /api
  - name: tenants
    match: {host: "*.example.com", methods: [get, head]}
    upstream: app
  - name: rest
    match: {path_prefix: /}
    upstream: app
"""


@pytest.mark.parametrize(
    ("host_header", "raw_path", "method", "expected"),
    [
        pytest.param("a.test", "/api/x", "GET", "api", id="prefix"),
        pytest.param("a.test", "/%61pi/x", "GET", "api", id="percent-encoded-prefix-matches"),
        pytest.param("a.test", "/other/../api/x", "GET", "api", id="dot-segments-resolved-into-prefix"),
        pytest.param("a.test", "/api/../admin", "GET", "rest", id="dot-segments-resolved-out-of-prefix"),
        pytest.param("a.test", "/api", "GET", "rest", id="prefix-needs-slash"),
        pytest.param("Shop.Example.COM:8443", "/", "GET", "tenants", id="wildcard-host-with-port-and-case"),
        pytest.param("shop.example.com", "/", "POST", "rest", id="methods-lower-cased-in-config"),
        pytest.param("example.com", "/", "GET", "rest", id="wildcard-skips-apex"),
        pytest.param("shop.example.com", "/api/x", "GET", "api", id="config-order-decides"),
    ],
)
def test_router_match_from_config(host_header: str, raw_path: str, method: str, expected: str) -> None:
    router = Router(from_text(CONFIG).routes)
    found = router.match(host_name(host_header), normalize_path(raw_path), method)
    assert found is not None
    assert found.name == expected


@pytest.mark.parametrize(
    ("raw_target", "prefix", "expected"),
    [
        pytest.param("/api/users?id=1", "/api", "/users?id=1", id="query-kept"),
        pytest.param("/api/users", "/api/", "/users", id="prefix-with-slash-keeps-leading-slash"),
        pytest.param("/api", "/api", "/", id="whole-path"),
        pytest.param("/api?x=1", "/api", "/?x=1", id="whole-path-with-query"),
        pytest.param("/api/a%2Fb?q=%20", "/api", "/a%2Fb?q=%20", id="rest-kept-byte-for-byte"),
        pytest.param("/web/users", "/api", "/web/users", id="prefix-absent-unchanged"),
        pytest.param("/%61pi/users", "/api", "/%61pi/users", id="encoded-prefix-not-raw-match"),
        pytest.param("/api/users", None, "/api/users", id="no-prefix"),
        pytest.param("/api/users", "", "/api/users", id="empty-prefix"),
    ],
)
def test_strip_prefix(raw_target: str, prefix: str | None, expected: str) -> None:
    assert strip_prefix(raw_target, prefix) == expected


@pytest.mark.parametrize(
    ("raw_target", "prefix", "expected"),
    [
        pytest.param("/api/users?id=1", "/api", "/users?id=1", id="raw-prefix-stripped-raw"),
        pytest.param("/api/a%2Fb", "/api", "/a%2Fb", id="raw-prefix-rest-not-reencoded"),
        pytest.param("/%61pi/users?id=1", "/api", "/users?id=1", id="decoded-prefix-stripped"),
        pytest.param("/%61pi/a%20b", "/api", "/a%20b", id="decoded-rest-reencoded"),
        pytest.param("/web/x", "/api", "/web/x", id="prefix-absent-unchanged"),
        pytest.param("/%61pi/x", None, "/%61pi/x", id="no-prefix-unchanged"),
    ],
)
def test_upstream_target(raw_target: str, prefix: str | None, expected: str) -> None:
    assert upstream_target(raw_target, normalize_path(raw_target), prefix) == expected


@pytest.mark.parametrize(
    ("raw", "authority", "target"),
    [
        pytest.param("/a?b=1", None, "/a?b=1", id="origin-form"),
        pytest.param("/a?b=1#frag", None, "/a?b=1", id="fragment-dropped"),
        pytest.param("/a#frag?not=query", None, "/a", id="query-after-fragment-dropped"),
        pytest.param("/#", None, "/", id="empty-fragment"),
        pytest.param("http://internal.example/admin?x=1", "internal.example", "/admin?x=1", id="absolute"),
        pytest.param("HTTP://Internal.Example:8080/a#top", "Internal.Example:8080", "/a", id="absolute-case-port-fragment"),
        pytest.param("https://example.com", "example.com", "/", id="absolute-no-path"),
        pytest.param("http://example.com?q=1", "example.com", "/?q=1", id="absolute-query-no-path"),
        pytest.param("http://[::1]:8080/x", "[::1]:8080", "/x", id="absolute-ipv6"),
        pytest.param("http://10.0.0.1//a/../b", "10.0.0.1", "//a/../b", id="absolute-path-kept-raw"),
    ],
)
def test_split_target(raw: str, authority: str | None, target: str) -> None:
    assert split_target(raw) == (authority, target)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("http://user:pw@example.com/a", id="user-info"),
        pytest.param("http://@example.com/a", id="empty-user-info"),
        pytest.param("ftp://example.com/a", id="other-scheme"),
        pytest.param("http:///a", id="no-host"),
        pytest.param("http://", id="nothing"),
        pytest.param("http://exa mple.com/", id="space-in-host"),
        pytest.param("example.com:443", id="authority-form"),
        pytest.param("*", id="asterisk-form"),
        pytest.param("a/b", id="relative"),
        pytest.param("", id="empty"),
    ],
)
def test_split_target_refuses_what_cannot_be_forwarded(raw: str) -> None:
    with pytest.raises(ValueError):
        split_target(raw)
