"""Max-Forwards (RFC 9110 §7.6.2): an OPTIONS or TRACE whose hops ran out is answered here.

A proxy that forwards an OPTIONS or TRACE carrying Max-Forwards sends it on
with the count one lower; at 0 it must not forward the request but answer it
as its final recipient:

    OPTIONS   200, Allow: the route's methods (every method, if the route names none)
    TRACE     200, message/http: the request as received, but for its credentials

A value that is not a count (RFC 9110: 1*DIGIT) is sent on as it came.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, istr

from ..core.settings import Route
from .aiohttp_responses import write_whole

MAX_FORWARDS = istr("Max-Forwards")
METHODS = frozenset({"OPTIONS", "TRACE"})  # the methods Max-Forwards applies to
_EVERY_METHOD = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"
# Not echoed by TRACE: a script that can send one must not read these back (cross-site tracing).
_CREDENTIALS = frozenset({b"cookie", b"authorization", b"proxy-authorization"})


async def answer_or_count(request: web.BaseRequest, route: Route, outgoing: CIMultiDict[str],
                          value: str) -> web.StreamResponse | None:
    """The answer to a request whose Max-Forwards is 0; else None, `outgoing`'s count one lower."""
    if not (value.isascii() and value.isdigit()):
        return None
    hops = int(value)
    if hops > 0:
        outgoing[MAX_FORWARDS] = str(hops - 1)
        return None
    if request.method == "OPTIONS":
        methods = route.match.methods
        allow = ", ".join(sorted(methods)) if methods else _EVERY_METHOD
        return await write_whole(request, 200, "OK", [("Allow", allow)], b"")
    version = request.version
    lines = [b"%s %s HTTP/%d.%d" % (request.method.encode(), request.raw_path.encode("utf-8", "surrogateescape"),
                                    version.major, version.minor)]
    lines += [name + b": " + value for name, value in request.raw_headers if name.lower() not in _CREDENTIALS]
    return await write_whole(request, 200, "OK", [("Content-Type", "message/http")], b"\r\n".join(lines) + b"\r\n\r\n")
