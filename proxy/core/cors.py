"""CORS on the errors the proxy answers itself or rewrites: which headers, for which Origin.

A page on `https://app.example.com` that calls `https://api.example.com`
can read a response only if it says the page may. An upstream that is down
cannot say so, so without these headers the browser hides the proxy's 502
from the script, which sees a bare "CORS error". For a route with `cors`, every
error it renders carries them:

>>> from multidict import CIMultiDict
>>> from proxy.core.settings import Cors
>>> cors = Cors(allow_origins=("https://app.example.com",), allow_credentials=True)
>>> headers = CIMultiDict({"Access-Control-Allow-Origin": "https://evil.example"})  # kept from the upstream
>>> apply(headers, cors, "https://app.example.com")
>>> for name, value in headers.items(): print(f"{name}: {value}")
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Expose-Headers: X-Request-ID, ETag, Retry-After, Proxy-Status
Vary: Origin

The route's settings win over CORS headers an upstream's rewritten error
carried; responses passed through unchanged are not touched here at all.
A preflight (OPTIONS with Origin and Access-Control-Request-Method) is the
upstream's to answer unless `preflight: proxy`; then `preflight` gives the
answer's headers: the allow headers for an allowed origin, none for another
(the browser then refuses the request, which is the point), as Traefik's and
Kong's CORS do rather than answering 403. The proxy answers such a preflight
during maintenance too: a refused preflight would hide from the page the 503
that the request after it gets.
"""

from __future__ import annotations

import re
from typing import Mapping

from multidict import CIMultiDict

from .settings import CORS_EXPOSED, Cors
from .headers import TOKEN

ALLOW_ORIGIN = "Access-Control-Allow-Origin"
ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
EXPOSE_HEADERS = "Access-Control-Expose-Headers"
REQUEST_METHOD = "Access-Control-Request-Method"
REQUEST_HEADERS = "Access-Control-Request-Headers"
# The upstream's say on these is replaced by the route's (they are kept on rewritten errors: headers.ACTIONABLE).
_REPLACED = (ALLOW_ORIGIN, ALLOW_CREDENTIALS, EXPOSE_HEADERS)
# An Origin as browsers serialize it: scheme, host, port; lower case, default port left out.
_ORIGIN = re.compile(r"https?://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
                     r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
_MAX_REQUEST_HEADERS = 1000  # characters of Access-Control-Request-Headers echoed; browsers send a few names


def allowed(cors: Cors, origin: str | None) -> bool:
    """Whether a page on `origin` may read this route's errors.

    >>> cors = Cors(allow_origins=("https://app.example.com", "https://*.example.org"))
    >>> [allowed(cors, o) for o in ("https://app.example.com", "https://a.b.example.org", "https://example.org", None)]
    [True, True, False, False]
    """
    if not origin:
        return False
    if "*" in cors.allow_origins:
        return True
    return any(_matches(entry, origin) for entry in cors.allow_origins)


def _matches(entry: str, origin: str) -> bool:
    """`origin` is `entry`, or ends as `entry` does after its `*.` (one or more labels in its place)."""
    if "*." not in entry:
        return origin == entry
    scheme_and_star, suffix = entry.split("*", 1)  # "https://", ".example.com[:port]"
    if not origin.startswith(scheme_and_star) or not origin.endswith(suffix):
        return False
    label = origin[len(scheme_and_star):len(origin) - len(suffix)]
    return bool(label) and _ORIGIN.fullmatch(origin) is not None and ":" not in label


def allow_origin(cors: Cors, origin: str) -> str:
    """The Access-Control-Allow-Origin value for an allowed `origin`: `*` when any origin may read
    without credentials (nothing from the request is echoed), else the origin itself."""
    return "*" if "*" in cors.allow_origins else origin


def error_headers(cors: Cors, origin: str | None) -> list[tuple[str, str]]:
    """The CORS headers of an error answered to a request from `origin` (its Origin header, or None).

    >>> error_headers(Cors(allow_origins=("*",), expose_headers=("X-Trace",)), "https://x.test")
    [('Access-Control-Allow-Origin', '*'), ('Access-Control-Expose-Headers', 'X-Request-ID, ETag, Retry-After, Proxy-Status, X-Trace')]
    >>> error_headers(Cors(allow_origins=("https://a.test",)), "https://b.test")
    []
    """
    if not allowed(cors, origin):
        return []
    assert origin is not None
    out = [(ALLOW_ORIGIN, allow_origin(cors, origin))]
    if cors.allow_credentials:
        out.append((ALLOW_CREDENTIALS, "true"))
    exposed = dict.fromkeys(CORS_EXPOSED)
    for name in cors.expose_headers:
        if name.lower() not in (known.lower() for known in exposed):
            exposed[name] = None
    out.append((EXPOSE_HEADERS, ", ".join(exposed)))
    return out


def apply(headers: CIMultiDict[str], cors: Cors, origin: str | None) -> None:
    """Give an error's `headers` the route's CORS headers in place of any the upstream sent.

    `Vary: Origin` is added whatever the origin: the answer differs by Origin,
    and a cache must not hand one origin's answer to another.
    """
    for name in _REPLACED:
        headers.popall(name, None)
    for name, value in error_headers(cors, origin):
        headers.add(name, value)
    add_vary(headers, "Origin")


def add_vary(headers: CIMultiDict[str], *names: str) -> None:
    """Add each of `names` to Vary unless a Vary header lists it (or `*`) already.

    >>> h = CIMultiDict({"Vary": "Accept, origin"})
    >>> add_vary(h, "Origin", "Access-Control-Request-Method"); h.getall("Vary")
    ['Accept, origin', 'Access-Control-Request-Method']
    """
    listed = {token.strip().lower() for value in headers.getall("Vary", ()) for token in value.split(",")}
    if "*" in listed:
        return
    missing = [name for name in names if name.lower() not in listed]
    if missing:
        headers.add("Vary", ", ".join(missing))


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """An OPTIONS request a browser sends before a cross-origin request it is not sure of.

    >>> is_preflight("OPTIONS", {"Origin": "https://a.test", "Access-Control-Request-Method": "PUT"})
    True
    >>> is_preflight("OPTIONS", {"Origin": "https://a.test"})  # a plain OPTIONS: the upstream's
    False
    """
    return method == "OPTIONS" and bool(headers.get("Origin")) and bool(headers.get(REQUEST_METHOD))


def preflight(cors: Cors, origin: str | None, request_headers: str | None) -> list[tuple[str, str]]:
    """The headers of the proxy's 204 answer to a preflight from `origin`.

    `request_headers` is its Access-Control-Request-Headers; with no
    `allow_headers` configured, those names are allowed back (when they are
    well-formed names). A disallowed origin gets only Vary: the browser then
    blocks the request.

    >>> for name, value in preflight(Cors(allow_origins=("https://a.test",), max_age=600), "https://a.test", "content-type, x-csrf"):
    ...     print(f"{name}: {value}")
    Access-Control-Allow-Origin: https://a.test
    Access-Control-Allow-Methods: GET, HEAD, POST, PUT, PATCH, DELETE
    Access-Control-Allow-Headers: content-type, x-csrf
    Access-Control-Max-Age: 600
    Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
    >>> preflight(Cors(allow_origins=("https://a.test",)), "https://b.test", None)
    [('Vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')]
    """
    vary = ("Vary", f"Origin, {REQUEST_METHOD}, {REQUEST_HEADERS}")
    if not allowed(cors, origin):
        return [vary]
    assert origin is not None
    out = [(ALLOW_ORIGIN, allow_origin(cors, origin))]
    if cors.allow_credentials:
        out.append((ALLOW_CREDENTIALS, "true"))
    out.append(("Access-Control-Allow-Methods", ", ".join(cors.allow_methods)))
    allow_headers = ", ".join(cors.allow_headers) if cors.allow_headers is not None else _echo(request_headers)
    if allow_headers:
        out.append(("Access-Control-Allow-Headers", allow_headers))
    out.append(("Access-Control-Max-Age", str(int(cors.max_age))))
    out.append(vary)
    return out


def _echo(request_headers: str | None) -> str:
    """Access-Control-Request-Headers back, if it is a short list of header names; else nothing.

    >>> _echo("Content-Type,X-Csrf"), _echo("x\\r\\ny: z"), _echo(None)
    ('Content-Type, X-Csrf', '', '')
    """
    if not request_headers or len(request_headers) > _MAX_REQUEST_HEADERS:
        return ""
    names = [name.strip() for name in request_headers.split(",") if name.strip()]
    if not all(TOKEN.fullmatch(name) for name in names):
        return ""
    return ", ".join(names)
