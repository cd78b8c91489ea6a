"""CORS at request time: the proxy's answer to a preflight, and the headers of a rendered error.

The decisions are `core.cors`'s; this module reads them off the request
and puts them on the response.
"""

from __future__ import annotations

from aiohttp import web

from ..core import cors
from ..core.settings import Cors
from .aiohttp_responses import NoInventedHeaders


class PreflightResponse(NoInventedHeaders, web.Response):
    """The proxy's answer to a preflight: no Server header, no invented Content-Type."""


def answers_preflight(settings: Cors | None, request: web.BaseRequest) -> bool:
    """Whether the proxy answers this request itself: a preflight on a route with `preflight: proxy`."""
    return settings is not None and settings.preflight == "proxy" and cors.is_preflight(request.method, request.headers)


def preflight(settings: Cors, request: web.BaseRequest, request_id: str) -> web.Response:
    """204 with the allow headers (for an allowed Origin; only Vary for another)."""
    response = PreflightResponse(status=204)
    for name, value in cors.preflight(settings, request.headers.get("Origin"),
                                      request.headers.get(cors.REQUEST_HEADERS)):
        response.headers.add(name, value)
    response.headers["X-Request-ID"] = request_id
    return response


def add_headers(response: web.StreamResponse, settings: Cors | None, request: web.BaseRequest) -> None:
    """The route's CORS headers on an error about to be sent (not on one sent already)."""
    if settings is not None and not response.prepared:
        cors.apply(response.headers, settings, request.headers.get("Origin"))
