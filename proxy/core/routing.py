"""Pick the route for a request.

Routes are tried in the order the config lists them; the first whose every
condition holds wins (host, then path prefix, then path regex, then method).
Put specific routes before general ones: a `path_prefix: /` route placed first
catches everything.

Paths are matched on the request path as the upstream will read it: percent-
decoded, with `.` and `..` segments resolved. Forwarding still sends the raw
request target byte for byte.

>>> normalize_path("/api/%761/../users")
'/api/users'
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from .settings import Route

# RFC 3986 authority without user info: reg-name or IP literal, optional port; as nginx, a
# name neither starts with a dot nor holds two in a row (one at its end is the root's, and kept).
_AUTHORITY = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9._~!$&'()*+,;=%-]+(:[0-9]*)?|\[[0-9A-Fa-f:.]+\](:[0-9]*)?")
_SCHEMES = ("http", "https")


def split_target(raw_target: str) -> tuple[str | None, str]:
    """The authority of an absolute-form request target (None for origin form) and the
    origin-form target to forward, without its fragment.

    RFC 9112 §3.2.2: a server reads the host from an absolute-form target, not
    from Host, so the proxy routes on it and forwards origin form, which every
    upstream reads the same way. A fragment is the client's own (RFC 9110
    §4.2.5) and never part of a request. Anything else (authority or asterisk
    form, another scheme, user info) raises ValueError: it cannot be forwarded.

    >>> split_target("/a?b=1#top")
    (None, '/a?b=1')
    >>> split_target("http://Internal.example:8080/admin?x=1")
    ('Internal.example:8080', '/admin?x=1')
    >>> split_target("https://example.com?q")
    ('example.com', '/?q')
    """
    target = raw_target.partition("#")[0]
    if target.startswith("/"):
        return None, target
    scheme, separator, rest = target.partition("://")
    if not separator or scheme.lower() not in _SCHEMES:
        raise ValueError("not an origin-form or http(s) absolute-form request target")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    authority, path = rest[:end], rest[end:]
    if not _AUTHORITY.fullmatch(authority):
        raise ValueError("no valid host in the absolute-form request target (or user info, which is refused)")
    return authority, path if path.startswith("/") else "/" + path


def normalize_path(raw_path: str) -> str:
    """Decode percent-escapes and remove dot segments (RFC 3986 §5.2.4)."""
    path = raw_path.partition("?")[0]
    if "%" in path:
        path = unquote(path, errors="replace")
    if "/." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = "/" if segments[-1] in (".", "..") else ""
    return "/" + "/".join(out) + trailing if out else "/"


def host_is_valid(host: str) -> bool:
    """Whether a Host field value is a host and optional port (RFC 9112 §3.2: else 400).

    >>> [host_is_valid(h) for h in ("example.com:8080", "[::1]", "example.com.", "a b", "x..y", "", "x:http")]
    [True, True, True, False, False, False, False]
    """
    return _AUTHORITY.fullmatch(host) is not None


def host_name(host_header: str | None) -> str:
    """`Example.COM:8080` -> `example.com`; `[::1]:80` -> `::1`; `example.com.` (the
    root's dot, which names the same host) -> `example.com`."""
    if not host_header:
        return ""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.rpartition(":")[0]
    return host[:-1] if host.endswith(".") else host


_HOSTS: dict[str | None, str | None] = {}  # Host values seen: each one's name, or None when it is not valid
_HOSTS_KEPT = 1024  # at most; past it they are forgotten, all at once
_UNSEEN = object()


def host_of(value: str | None) -> str | None:
    """The name a Host value routes on (`host_name`), or None when it is not a host and
    optional port (`host_is_valid`); "" for none. Remembered: most requests repeat a few.

    >>> host_of("Example.com:8080"), host_of("a b"), host_of(None)
    ('example.com', None, '')
    """
    name = _HOSTS.get(value, _UNSEEN)
    if name is _UNSEEN:
        name = host_name(value) if value is None or host_is_valid(value) else None
        if len(_HOSTS) >= _HOSTS_KEPT:
            _HOSTS.clear()
        _HOSTS[value] = name
    return name  # type: ignore[return-value]


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


class Router:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes

    def match(self, host: str, path: str, method: str) -> Route | None:
        """The first route whose conditions all hold, or None.

        `host` is a bare lower-case name (see `host_name`), `path` normalized.
        """
        for route in self.routes:
            rule = route.match
            if rule.hosts and not any(_host_matches(p, host) for p in rule.hosts):
                continue
            if rule.path_prefix is not None and not path.startswith(rule.path_prefix):
                continue
            if rule.path_regex is not None and rule.path_regex.search(path) is None:
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            return route
        return None


def strip_prefix(raw_target: str, prefix: str | None) -> str:
    """Remove a route's prefix from the raw request target, keeping a leading `/`.

    >>> strip_prefix("/api/users?id=1", "/api")
    '/users?id=1'
    >>> strip_prefix("/api?x", "/api")
    '/?x'
    """
    if not prefix or not raw_target.startswith(prefix):
        return raw_target
    rest = raw_target[len(prefix):]
    if not rest.startswith("/"):
        rest = "/" + rest
    return rest


def upstream_target(raw_target: str, path: str, prefix: str | None) -> str:
    """The request target to send upstream once a route's `strip_prefix` applies.

    The raw target is kept byte for byte when it starts with the prefix as
    written. When the route matched only after decoding (`/%61pi/x` for `/api`),
    the prefix is stripped from the decoded path, which is then re-encoded, as
    nginx does, so the upstream never sees the prefix it was meant not to see.

    >>> upstream_target("/%61pi/users?id=1", "/api/users", "/api")
    '/users?id=1'
    """
    if not prefix:
        return raw_target
    if raw_target.startswith(prefix) or not path.startswith(prefix):
        return strip_prefix(raw_target, prefix)
    _, mark, query = raw_target.partition("?")
    return strip_prefix(quote(path, safe="/:@!$&'()*+,;=~"), prefix) + mark + query
