"""Turn a Problem into an HTTP response."""

from __future__ import annotations

from aiohttp import hdrs, web

from .problem import Problem

PROXY_NAME = "errorproxy"


class NoInventedHeaders:
    """Keeps aiohttp from adding a Server or Content-Type nobody set.

    aiohttp fills both in when absent; a proxy must neither invent headers the
    upstream did not send nor advertise its own software. (Date is still added,
    as RFC 9110 §6.6.1 asks of a proxy.)
    """

    async def _prepare_headers(self) -> None:
        had_type = hdrs.CONTENT_TYPE in self.headers
        had_server = hdrs.SERVER in self.headers
        await super()._prepare_headers()  # type: ignore[misc]
        if not had_type:
            self.headers.popall(hdrs.CONTENT_TYPE, None)
        if not had_server:
            self.headers.popall(hdrs.SERVER, None)


class PassthroughResponse(NoInventedHeaders, web.StreamResponse):
    """An upstream response on its way to the client."""


class ProblemResponse(NoInventedHeaders, web.Response):
    """A response the proxy renders itself."""


def problem_headers(problem: Problem) -> dict[str, str]:
    headers = {"Cache-Control": "no-store"}
    if problem.request_id:
        headers["X-Request-ID"] = problem.request_id
    if problem.proxy_status:
        headers["Proxy-Status"] = f"{PROXY_NAME}; {problem.proxy_status}"
    return headers


def render(problem: Problem) -> web.Response:
    """An application/problem+json response (aiohttp drops the body for HEAD)."""
    return ProblemResponse(
        status=problem.status,
        body=problem.to_json(),
        headers=problem_headers(problem),
        content_type="application/problem+json",
    )
