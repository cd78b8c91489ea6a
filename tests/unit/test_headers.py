"""headers: hop-by-hop removal, Via, X-Forwarded-*, request ids."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.core.headers import (
    HOP_BY_HOP,
    actionable,
    downstream_response_headers,
    head_bytes,
    is_trusted,
    request_id,
    upstream_request_headers,
)

PEER = "203.0.113.9"
FRESH_ID = re.compile(r"[0-9a-f]{32}")


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def upstream(*pairs: tuple[str, str], trusted: bool = False, peer: str | None = PEER) -> CIMultiDict[str]:
    return upstream_request_headers(
        headers(*pairs), peer=peer, trusted=trusted, host="backend:9000", version="1.1", request_id="rid-1",
    )


# Every hop-by-hop header, as written and in the lower case some clients and
# upstreams send: both must be removed.
HOP_NAMES = [
    pytest.param(name, id=name) for name in
    ("Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
     "TE", "Trailer", "Transfer-Encoding", "Upgrade")
] + [
    pytest.param(name, id=f"lower-{name}") for name in
    ("connection", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade")
]


def test_hop_by_hop_list_is_complete() -> None:
    assert {name.lower() for name in HOP_BY_HOP} == {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade",
    }


@pytest.mark.parametrize("name", HOP_NAMES)
def test_request_hop_by_hop_removed(name: str) -> None:
    out = upstream((name, "value"), ("X-End", "kept"))
    assert name not in out
    assert out["X-End"] == "kept"


@pytest.mark.parametrize("name", HOP_NAMES)
def test_response_hop_by_hop_removed(name: str) -> None:
    out = downstream_response_headers(headers((name, "value"), ("X-End", "kept")), "1.1")
    assert name not in out
    assert out["X-End"] == "kept"


CONNECTION_LISTED = [
    pytest.param([("Connection", "close, X-Secret"), ("X-Secret", "s")], {"X-Secret"}, id="one-listed"),
    pytest.param([("Connection", "close,X-Secret ,  X-Other"), ("X-Secret", "s"), ("X-Other", "o")],
                 {"X-Secret", "X-Other"}, id="spacing"),
    pytest.param([("Connection", "X-Secret"), ("x-secret", "s")], {"X-Secret"}, id="listed-case-differs"),
    pytest.param([("connection", "x-secret"), ("X-SECRET", "s")], {"X-Secret"}, id="lower-connection"),
    pytest.param([("Connection", "X-A"), ("Connection", "X-B"), ("X-A", "a"), ("X-B", "b")], {"X-A", "X-B"},
                 id="several-connection-headers"),
    pytest.param([("Connection", "X-Secret"), ("X-Secret", "1"), ("X-Secret", "2")], {"X-Secret"},
                 id="listed-repeated"),
    pytest.param([("Connection", ", ,X-Secret,"), ("X-Secret", "s")], {"X-Secret"}, id="empty-tokens"),
]


@pytest.mark.parametrize(("pairs", "gone"), CONNECTION_LISTED)
def test_request_connection_listed_removed(pairs: list[tuple[str, str]], gone: set[str]) -> None:
    out = upstream(*pairs, ("X-End", "kept"))
    assert not any(name in out for name in gone | {"Connection"})
    assert out["X-End"] == "kept"


@pytest.mark.parametrize(("pairs", "gone"), CONNECTION_LISTED)
def test_response_connection_listed_removed(pairs: list[tuple[str, str]], gone: set[str]) -> None:
    out = downstream_response_headers(headers(*pairs, ("X-End", "kept")), "1.1")
    assert not any(name in out for name in gone | {"Connection"})
    assert out["X-End"] == "kept"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([], "backend:9000", id="absent"),
        pytest.param([("Host", "client.test")], "backend:9000", id="replaced"),
        pytest.param([("host", "client.test")], "backend:9000", id="lower-case-replaced"),
    ],
)
def test_request_host_replaced(pairs: list[tuple[str, str]], expected: str) -> None:
    assert upstream(*pairs).getall("Host") == [expected]


@pytest.mark.parametrize("name", [pytest.param("Expect", id="canonical"), pytest.param("expect", id="lower")])
def test_request_expect_dropped(name: str) -> None:
    assert "Expect" not in upstream((name, "100-continue"))


VIA_CASES = [
    pytest.param([], "1.1", "1.1 errorproxy", id="none"),
    pytest.param([("Via", "1.0 other")], "1.1", "1.0 other, 1.1 errorproxy", id="appended"),
    pytest.param([("Via", "1.0 a"), ("via", "1.1 b")], "1.1", "1.0 a, 1.1 b, 1.1 errorproxy", id="several-joined"),
    pytest.param([], "1.0", "1.0 errorproxy", id="http-1.0"),
]


@pytest.mark.parametrize(("pairs", "version", "expected"), VIA_CASES)
def test_request_via(pairs: list[tuple[str, str]], version: str, expected: str) -> None:
    out = upstream_request_headers(headers(*pairs), peer=PEER, trusted=False, host="h", version=version,
                                   request_id="r")
    assert out.getall("Via") == [expected]


@pytest.mark.parametrize(("pairs", "version", "expected"), VIA_CASES)
def test_response_via(pairs: list[tuple[str, str]], version: str, expected: str) -> None:
    assert downstream_response_headers(headers(*pairs), version).getall("Via") == [expected]


CLIENT_FORWARDING = (
    ("Host", "shop.test"),
    ("X-Forwarded-For", "198.51.100.1"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "spoofed.test"),
    ("Forwarded", "for=198.51.100.1;proto=https"),
)


@pytest.mark.parametrize(
    ("pairs", "trusted", "expected"),
    [
        pytest.param(CLIENT_FORWARDING, False, {
            "X-Forwarded-For": [PEER], "X-Forwarded-Proto": ["http"], "X-Forwarded-Host": ["shop.test"],
            "Forwarded": [],
        }, id="untrusted-client-values-replaced"),
        pytest.param([("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=1.1.1.1")], False, {
            "X-Forwarded-For": [PEER], "Forwarded": [], "X-Forwarded-Host": [],
        }, id="untrusted-lower-case-names-replaced"),
        pytest.param([], False, {
            "X-Forwarded-For": [PEER], "X-Forwarded-Proto": ["http"], "X-Forwarded-Host": [],
        }, id="untrusted-no-host-no-forwarded-host"),
        pytest.param(CLIENT_FORWARDING, True, {
            "X-Forwarded-For": [f"198.51.100.1, {PEER}"], "X-Forwarded-Proto": ["https"],
            "X-Forwarded-Host": ["spoofed.test"], "Forwarded": ["for=198.51.100.1;proto=https"],
        }, id="trusted-client-values-kept-and-appended"),
        pytest.param([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2, 3.3.3.3")], True, {
            "X-Forwarded-For": [f"1.1.1.1, 2.2.2.2, 3.3.3.3, {PEER}"],
        }, id="trusted-several-xff-joined-in-order"),
        pytest.param([("Host", "shop.test")], True, {
            "X-Forwarded-For": [PEER], "X-Forwarded-Proto": ["http"], "X-Forwarded-Host": ["shop.test"],
        }, id="trusted-without-client-values"),
    ],
)
def test_forwarding_headers(pairs, trusted: bool, expected: dict[str, list[str]]) -> None:
    out = upstream(*pairs, trusted=trusted)
    for name, values in expected.items():
        assert out.getall(name, []) == values, name


@pytest.mark.parametrize(
    ("pairs", "trusted", "expected"),
    [
        pytest.param([], False, [PEER], id="set-from-peer"),
        pytest.param([("X-Real-IP", "6.6.6.6")], False, [PEER], id="untrusted-replaced"),
        pytest.param([("x-real-ip", "6.6.6.6"), ("X-Real-IP", "7.7.7.7")], False, [PEER], id="untrusted-all-replaced"),
        pytest.param([("X-Real-IP", "198.51.100.1")], True, ["198.51.100.1"], id="trusted-kept"),
        pytest.param([], True, [PEER], id="trusted-none-sent"),
    ],
)
def test_x_real_ip_is_the_peer_unless_a_trusted_proxy_sent_one(pairs, trusted: bool, expected: list[str]) -> None:
    assert upstream(*pairs, trusted=trusted).getall("X-Real-IP") == expected


SPOOFS = [("X_Forwarded_For", "6.6.6.6"), ("X_Real_IP", "6.6.6.6"), ("Transfer_Encoding", "chunked"),
          ("x_forwarded_host", "evil.test"), ("_", "x"), ("X-Custom_", "x")]


def test_header_names_with_underscores_are_dropped() -> None:
    out = upstream(*SPOOFS, ("X-Kept", "1"))
    assert not [name for name in out if "_" in name]
    assert out["X-Kept"] == "1"
    assert out.getall("X-Forwarded-For") == [PEER]


def test_header_names_with_underscores_are_kept_when_allowed() -> None:
    out = upstream_request_headers(headers(*SPOOFS), peer=PEER, trusted=False, host="h", version="1.1",
                                   request_id="r", allow_underscores=True)
    assert [(name, value) for name, value in out.items() if "_" in name] == SPOOFS
    assert out.getall("X-Forwarded-For") == [PEER]  # the dashed name is still the proxy's


def test_response_header_names_with_underscores_are_kept() -> None:
    assert downstream_response_headers(headers(("X_Upstream_Thing", "1")), "1.1")["X_Upstream_Thing"] == "1"


def test_client_host_is_the_forwarded_host() -> None:
    out = upstream_request_headers(headers(("Host", "public.example")), peer=PEER, trusted=False, host="h",
                                   version="1.1", request_id="r", client_host="internal.example")
    assert out.getall("X-Forwarded-Host") == ["internal.example"]


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([], id="none-sent"),
        pytest.param([("X-Request-ID", "client-id")], id="client-id-overwritten"),
        pytest.param([("x-request-id", "a"), ("X-Request-ID", "b")], id="several-overwritten"),
    ],
)
def test_request_id_header_is_the_one_given(pairs: list[tuple[str, str]]) -> None:
    assert upstream(*pairs).getall("X-Request-ID") == ["rid-1"]


def test_end_to_end_request_headers_kept_in_order() -> None:
    pairs = [("Accept", "a"), ("Cookie", "c=1"), ("X-Custom", "1"), ("X-Custom", "2"), ("Authorization", "Bearer t")]
    out = upstream(*pairs)
    assert [(k, v) for k, v in out.items() if k not in {"Host", "X-Forwarded-For", "X-Forwarded-Proto",
                                                         "X-Real-IP", "Via", "X-Request-ID"}] == pairs


def test_response_repeated_headers_keep_order() -> None:
    pairs = [("Set-Cookie", "a=1"), ("Content-Type", "text/plain"), ("Set-Cookie", "b=2"), ("set-cookie", "c=3"),
             ("Cache-Control", "no-store")]
    out = downstream_response_headers(headers(*pairs), "1.1")
    assert out.getall("Set-Cookie") == ["a=1", "b=2", "c=3"]
    assert list(out.items()) == pairs + [("Via", "1.1 errorproxy")]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param(
            [("Server", "nginx"), ("Retry-After", "5"), ("X-Powered-By", "php"), ("ETag", '"v1"')],
            [("Retry-After", "5"), ("ETag", '"v1"')], id="kept-in-order-others-dropped",
        ),
        pytest.param(
            [("etag", '"v2"'), ("www-authenticate", "Bearer"), ("set-cookie", "a=1"), ("SET-COOKIE", "b=2")],
            [("etag", '"v2"'), ("www-authenticate", "Bearer"), ("set-cookie", "a=1"), ("SET-COOKIE", "b=2")],
            id="any-case",
        ),
        pytest.param([("Content-Type", "text/html"), ("Content-Length", "9")], [], id="none-actionable"),
    ],
)
def test_actionable(pairs: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    assert actionable(headers(*pairs)) == expected


def _nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [
        pytest.param("10.1.2.3", _nets("10.0.0.0/8"), True, id="ipv4-in-cidr"),
        pytest.param("11.1.2.3", _nets("10.0.0.0/8"), False, id="ipv4-outside-cidr"),
        pytest.param("192.168.1.7", _nets("10.0.0.0/8", "192.168.1.7/32"), True, id="second-network"),
        pytest.param("127.0.0.1", _nets("127.0.0.1/32"), True, id="single-address"),
        pytest.param("::1", _nets("::1/128"), True, id="ipv6-loopback"),
        pytest.param("2001:db8::5", _nets("2001:db8::/32"), True, id="ipv6-in-cidr"),
        pytest.param("2001:db9::5", _nets("2001:db8::/32"), False, id="ipv6-outside-cidr"),
        pytest.param("10.1.2.3", _nets("::/0"), False, id="ipv4-peer-ipv6-network"),
        pytest.param("::1", _nets("0.0.0.0/0"), False, id="ipv6-peer-ipv4-network"),
        pytest.param("10.1.2.3", (), False, id="nothing-trusted"),
        pytest.param(None, _nets("0.0.0.0/0"), False, id="no-peer"),
        pytest.param("", _nets("0.0.0.0/0"), False, id="empty-peer"),
        pytest.param("not-an-ip", _nets("0.0.0.0/0"), False, id="name-peer"),
        pytest.param("10.1.2.3:5000", _nets("0.0.0.0/0"), False, id="peer-with-port"),
        pytest.param("[::1]", _nets("::/0"), False, id="bracketed-peer"),
        pytest.param(" 10.1.2.3", _nets("0.0.0.0/0"), False, id="padded-peer"),
        pytest.param("10.1.2.3, 10.1.2.4", _nets("0.0.0.0/0"), False, id="list-peer"),
    ],
)
def test_is_trusted(peer: str | None, trusted: tuple, expected: bool) -> None:
    assert is_trusted(peer, trusted) is expected


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("abc-123", id="simple"),
        pytest.param("0f8e0c1f6b6d4a4e9b3f3a3c2d1e0f00", id="hex"),
        pytest.param("req.1:2+3/4=5_6", id="punctuation"),
        pytest.param("a" * 128, id="128-chars"),
    ],
)
def test_request_id_kept_when_well_formed(incoming: str) -> None:
    assert request_id(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("line\nbreak", id="newline"),
        pytest.param("trailing\n", id="trailing-newline"),
        pytest.param("cr\r\nX-Injected: 1", id="crlf-injection"),
        pytest.param("a" * 129, id="129-chars"),
        pytest.param("a" * 200, id="200-chars"),
        pytest.param("<script>", id="markup"),
        pytest.param("café", id="non-ascii"),
    ],
)
def test_request_id_replaced_when_malformed(incoming: str | None) -> None:
    fresh = request_id(incoming)
    assert FRESH_ID.fullmatch(fresh)
    assert request_id(incoming) != fresh


# Every character an upstream's field may hold once decoded: text, surrogates for bytes past ASCII, controls.
_FIELD_TEXT = st.text(st.one_of(st.characters(max_codepoint=0x7f), st.characters(min_codepoint=0xdc80,
                                                                                  max_codepoint=0xdcff),
                                st.sampled_from("é€\t\r\n\x00\x7f")), max_size=12)


@given(status=_FIELD_TEXT, name=_FIELD_TEXT, value=_FIELD_TEXT)
def test_head_bytes_refuses_a_control_character_anywhere_and_nothing_else(status, name, value):
    """Refused exactly when the status line or a field holds a control character other than HTAB."""
    controlled = re.search(r"[\x00-\x08\x0a-\x1f\x7f]", status + name + value) is not None
    if controlled:
        with pytest.raises(ValueError, match="Forbidden control character"):
            head_bytes(status, [("X-A", "1"), (name, value)])
    else:
        head = head_bytes(status, [("X-A", "1"), (name, value)])
        assert head == f"{status}\r\nX-A: 1\r\n{name}: {value}\r\n\r\n".encode("utf-8", "surrogateescape")
