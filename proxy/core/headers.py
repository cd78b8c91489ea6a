"""Header rules for forwarding: hop-by-hop removal, forwarding headers, request ids."""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import re
from typing import Iterable

from multidict import CIMultiDict, CIMultiDictProxy, istr

from .settings import IPNetwork

# RFC 9110 §7.6.1: these describe one connection, never the next one.
HOP_BY_HOP = frozenset(
    istr(name)
    for name in (
        "Connection",  # lists further hop-by-hop headers; removed with them
        "Keep-Alive",  # the previous hop's idle policy
        "Proxy-Connection",  # non-standard Connection sent by old clients
        "Proxy-Authenticate",  # challenges for a proxy on this hop
        "Proxy-Authorization",  # credentials for a proxy on this hop, never for the upstream
        "TE",  # transfer codings this hop accepts
        "Trailer",  # announces trailers of this hop's chunked framing
        "Transfer-Encoding",  # framing is redone by each hop
        "Upgrade",  # protocol switch of this connection (WebSocket handled apart)
    )
)
# The proxy answers `Expect: 100-continue` itself, once it is ready for the body.
_REQUEST_DROP = HOP_BY_HOP | {istr("Expect"), istr("Host")}
# istr compares like str, case and all: names are compared lower-cased, since
# clients and upstreams may send `connection` or `x-secret` in any case.
_HOP_BY_HOP_LOWER = frozenset(name.lower() for name in HOP_BY_HOP)
_REQUEST_DROP_LOWER = frozenset(name.lower() for name in _REQUEST_DROP)
# What `upstream_request_headers` sets itself: forwarding headers from an untrusted
# peer are dropped, from a trusted one X-Forwarded-For is extended and the rest kept.
_FORWARDING_LOWER = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"})
_UNTRUSTED_DROP = _REQUEST_DROP_LOWER | _FORWARDING_LOWER | {"via", "x-request-id"}
_TRUSTED_DROP = _REQUEST_DROP_LOWER | {"x-forwarded-for", "via", "x-request-id"}
_RESPONSE_DROP = _HOP_BY_HOP_LOWER | {"via"}
# Connection values that name no further header (`keep-alive` names Keep-Alive, hop-by-hop already).
_PLAIN_CONNECTION = frozenset({"keep-alive", "close"})
# Upstream headers a rewritten error keeps: what the client needs to act on it
# (retry, re-authenticate, refetch, follow), and CORS, without which a browser
# hides the error from the page's script. All others, Server and X-Powered-By
# among them, are dropped.
ACTIONABLE = frozenset(
    istr(name)
    for name in (
        "ETag", "Retry-After", "Allow", "WWW-Authenticate", "Location", "Content-Location",
        "Link", "Set-Cookie", "Vary", "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
        "Access-Control-Expose-Headers",
    )
)
_ACTIONABLE_LOWER = frozenset(name.lower() for name in ACTIONABLE)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 token: a method, a header name
VIA = "errorproxy"
# Names this module looks up or adds on every request, as istr: multidict keeps an istr's folded
# form, where a str is folded and hashed again at each use.
_HOST, _VIA, _CONNECTION, _X_FORWARDED_FOR, _X_FORWARDED_PROTO, _X_FORWARDED_HOST, _X_REAL_IP, X_REQUEST_ID = map(
    istr, ("Host", "Via", "Connection", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-IP",
           "X-Request-ID"))
_VERSION_NAMES = {(1, 1): "1.1", (1, 0): "1.0"}

log = logging.getLogger("errorproxy")


def connection_tokens(headers: CIMultiDictProxy[str]) -> set[istr]:
    """Header names listed in every Connection header: hop-by-hop too."""
    tokens = set()
    for value in headers.getall(_CONNECTION, ()):
        for token in value.split(","):
            token = token.strip()
            if token:
                tokens.add(istr(token))
    return tokens


def _forwardable(incoming: CIMultiDictProxy[str], dropped: frozenset[str],
                 underscores: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """The fields of `incoming` not named (lower case) in `dropped` nor in a Connection header,
    nor, unless `underscores`, holding `_` in their names; and the Via values to extend
    (`dropped` names Via: it is added back, extended, by the caller)."""
    via = incoming.getall(_VIA, ())
    connection = incoming.getall(_CONNECTION, None)
    if connection is not None and not (len(connection) == 1 and connection[0].lower() in _PLAIN_CONNECTION):
        listed = {token.lower() for token in connection_tokens(incoming)}
        listed.discard("content-length")  # the message's own framing: no option of a hop's
        dropped = dropped | listed
        if "via" in listed:
            via = []
    if underscores:
        return [(name, value) for name, value in incoming.items() if name.lower() not in dropped], via
    return [(name, value) for name, value in incoming.items()
            if name.lower() not in dropped and "_" not in name], via


# A control character other than HTAB, in a field or the status line, would let a value end the line.
_CONTROLS = bytes([*range(0x09), *range(0x0a, 0x20), 0x7f])  # CR and LF included: the line ends are counted in


def head_bytes(status_line: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """A response head: the status line, the fields, the blank line.

    Field bytes go out as they came in: obs-text (bytes past ASCII, which an
    upstream may send and which arrive as surrogates) is written back as the
    same bytes. A control character anywhere but the line ends raises
    ValueError, as aiohttp's own serializer does.

    >>> head_bytes("HTTP/1.1 200 OK", [("X-A", "caf\\udce9")])
    b'HTTP/1.1 200 OK\\r\\nX-A: caf\\xe9\\r\\n\\r\\n'
    >>> head_bytes("HTTP/1.1 200 OK", [("X-A", "a\\rb")])
    Traceback (most recent call last):
    ValueError: Forbidden control character detected in headers. Potential header injection attack.
    """
    lines = [status_line, *map(": ".join, fields), "\r\n"]
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    # Each line ends in the one CR LF put there, and nothing else is a control character: the
    # control characters removed are exactly those line ends (one pass in C; a regular expression
    # takes ten times as long).
    if len(head) - len(head.translate(None, _CONTROLS)) != 2 * len(lines):
        raise ValueError("Forbidden control character detected in headers. Potential header injection attack.")
    return head


def version_name(version: tuple[int, int]) -> str:
    """An HTTP version as Via names it: `(1, 1)` is "1.1"."""
    return _VERSION_NAMES.get(version) or "%d.%d" % version


def _via(prior: list[str], version: str) -> tuple[str, str]:
    mine = f"{version} {VIA}"
    return _VIA, f"{', '.join(prior)}, {mine}" if prior else mine


def actionable(incoming: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    """The upstream headers a rewritten error keeps, in their order."""
    return [(name, value) for name, value in incoming.items() if name.lower() in _ACTIONABLE_LOWER]


def request_id(incoming: str | None) -> str:
    """The client's X-Request-ID when it is well formed, else a new one."""
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return "%032x" % _ids.getrandbits(128)


# Fresh request ids: 128 random bits like uuid4().hex, without a getrandom call
# per request. They correlate log lines; they are not secrets. Seeded from the
# OS per process (a forked child reseeds), so workers never share a sequence.
_ids = random.Random()
if hasattr(os, "register_at_fork"):  # Windows has no fork
    os.register_at_fork(after_in_child=_ids.seed)


def is_trusted(peer: str | None, trusted: tuple[IPNetwork, ...]) -> bool:
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5 on a dual-stack socket
    return any(address in network for network in trusted)


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    peer: str | None,
    trusted: bool,
    host: str,
    version: str,
    request_id: str,
    proto: str = "http",
    client_host: str | None = None,
    allow_underscores: bool = False,
) -> CIMultiDict[str]:
    """The headers sent upstream: end-to-end ones as received, plus forwarding ones.

    `host` is the Host value to send (the client's or the upstream's, per route);
    `proto` is how the client reached the proxy, `http` or `https` (TLS);
    `client_host` is the authority the client asked for (an absolute-form
    target's; by default its Host), sent as X-Forwarded-Host.
    X-Forwarded-* and X-Real-IP from the client are kept only when the peer is
    a trusted proxy; else they name the peer.
    Header names holding `_` are dropped unless `allow_underscores`, as nginx
    does: CGI and WSGI servers read `X_Forwarded_For` as X-Forwarded-For, so
    an underscore would smuggle past every check on the dashed name.
    """
    # One pass, one CIMultiDict: what this sets itself is dropped here and added after.
    out, via = _forwardable(incoming, _TRUSTED_DROP if trusted else _UNTRUSTED_DROP, allow_underscores)
    if not allow_underscores and len(out) < len(incoming) and log.isEnabledFor(logging.DEBUG):
        for name in incoming:
            if "_" in name:
                log.debug("request header %r not forwarded: its name holds an underscore "
                          "(allow_underscores_in_headers) request_id=%s", name[:100], request_id)
    out.append((_HOST, host))
    if client_host is None:
        client_host = incoming.get(_HOST, "")
    if trusted:
        prior = ", ".join(incoming.getall(_X_FORWARDED_FOR, ()))
        out.append((_X_FORWARDED_FOR, f"{prior}, {peer}" if prior else (peer or "")))
        kept = {name.lower() for name, _ in out}
        for name, value in ((_X_FORWARDED_PROTO, proto), (_X_FORWARDED_HOST, client_host), (_X_REAL_IP, peer or "")):
            if name.lower() not in kept:
                out.append((name, value))
    else:
        out.append((_X_FORWARDED_FOR, peer or ""))
        out.append((_X_REAL_IP, peer or ""))
        out.append((_X_FORWARDED_PROTO, proto))
        if client_host:
            out.append((_X_FORWARDED_HOST, client_host))
    out.append(_via(via, version))
    out.append((X_REQUEST_ID, request_id))
    return CIMultiDict(out)


def downstream_response_headers(incoming: CIMultiDictProxy[str], version: str) -> CIMultiDict[str]:
    """The upstream's response headers as the client gets them."""
    return CIMultiDict(downstream_fields(incoming, version))


def downstream_fields(incoming: CIMultiDictProxy[str], version: str) -> list[tuple[str, str]]:
    """`downstream_response_headers` as a list of fields, in the upstream's order, Via last."""
    out, via = _forwardable(incoming, _RESPONSE_DROP)
    out.append(_via(via, version))
    return out
