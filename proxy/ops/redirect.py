"""The plain-HTTP listener of `tls.redirect_from`: every request answered 308 to its https URL.

    GET http://example.com:8080/docs?page=2   ─▶  308, Location: https://example.com/docs?page=2

308 rather than 301: the method and body are kept (RFC 9110 §15.4.9), so a
POST sent to the old port is not turned into a GET. The host comes from the
request's Host header, checked to be a host name or an IP address; the port
is the TLS listener's (`tls.redirect_port` when the outside sees another one),
left out when it is 443.
"""

from __future__ import annotations

import ipaddress
import re

from aiohttp import hdrs, web

from ..core import errors
from ..core.headers import request_id
from ..core.problem import Problem
from ..http.aiohttp_responses import NoInventedHeaders
from ..http.render import render

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def https_location(host_header: str | None, target: str, port: int) -> str | None:
    """The https URL for a request with this Host and target, or None when Host is no host.

    >>> https_location("example.com:8080", "/a?b=1", 443)
    'https://example.com/a?b=1'
    >>> https_location("[::1]:80", "/", 8443)
    'https://[::1]:8443/'
    >>> https_location("evil.com/@x", "/", 443) is None
    True
    """
    if not host_header:
        return None
    host = host_header.strip()
    if host.startswith("["):
        literal, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest[1:].isdigit()) or not _is_ip(literal, 6):
            return None
        name = f"[{literal}]"
    else:
        name, _, given_port = host.partition(":")
        if given_port and not given_port.isdigit():
            return None
        if not (_NAME.fullmatch(name) or _is_ip(name, 4)):
            return None
    if not target.startswith("/"):
        target = "/"  # an absolute-form or asterisk target: the site's root
    suffix = "" if port == 443 else f":{port}"
    return f"https://{name.lower()}{suffix}{target}"


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


class _Redirect(NoInventedHeaders, web.Response):
    """No Server header: the proxy does not name its software, here as everywhere."""


def redirect_handler(port: int):
    """The handler of the redirecting listener, pointing at the https `port`."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        location = https_location(request.headers.get(hdrs.HOST), request.raw_path, port)
        if location is None:
            problem = Problem.from_error(errors.BadRequest("The request has no valid Host header to redirect to."),
                                         instance=None, request_id=request_id(None))
            return render(problem)
        return _Redirect(status=308, headers={hdrs.LOCATION: location, hdrs.CONTENT_TYPE: "text/plain"},
                         text=f"This site is served over HTTPS: {location}\n")

    return handle
