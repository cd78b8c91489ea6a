"""Turn a Problem into an HTTP response in the negotiated format and JSON style.

HTML here is a minimal built-in page behind `html_page`; branded templates
replace it without touching callers.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Callable, Iterable, Mapping

import orjson
from aiohttp import hdrs, web

from ..core.negotiation import JSON, PROBLEM, Choice
from ..core.problem import Problem
from ..core.settings import ErrorPolicy

PROXY_NAME = "errorproxy"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    """An upstream response on its way to the client; its head leaves with the first body bytes."""

    _send_headers_immediately = False

    def send_headers(self) -> None:
        """Send the head now, ahead of a body that is not there yet."""
        writer = self._payload_writer
        if writer is not None:
            writer.send_headers()  # type: ignore[attr-defined]


class ProblemResponse(NoInventedHeaders, web.Response):
    """A response the proxy renders itself."""


def render(
    problem: Problem,
    choice: Choice = PROBLEM,
    policy: ErrorPolicy | None = None,
    *,
    negotiated: bool = False,
    keep: Iterable[tuple[str, str]] = (),
    method: str = "GET",
    path: str = "",
    html: Callable[[Problem], bytes] | None = None,
) -> ProblemResponse:
    """The response for `problem`; aiohttp drops the body for HEAD.

    `keep` are upstream headers the client needs to act (ETag, Retry-After, ...);
    `html` renders the page for HTML clients (the minimal built-in one if None).
    """
    style = policy.json_style if policy is not None else "problem"
    if choice.kind == "html":
        body, content_type = (html or html_page)(problem), "text/html; charset=utf-8"
    elif choice.kind == "text":
        body, content_type = text_page(problem), "text/plain; charset=utf-8"
    elif style == "envelope":
        body, content_type = _json(envelope(problem)), "application/json"
    elif style == "custom" and policy is not None and policy.json_template is not None:
        values = {**template_values(problem), "method": method, "path": path}
        body, content_type = _json(fill(policy.json_template, values)), "application/json"
    else:
        body, content_type = problem.to_json(), choice.media_type if choice is JSON else PROBLEM.media_type
    response = ProblemResponse(status=problem.status, body=body)
    headers = response.headers
    for name, value in keep:
        headers.add(name, value)
    headers[hdrs.CONTENT_TYPE] = content_type
    headers[hdrs.CACHE_CONTROL] = "no-store"
    if negotiated:
        headers.add(hdrs.VARY, "Accept")
    if problem.request_id:
        headers["X-Request-ID"] = problem.request_id
    if problem.proxy_status:
        headers["Proxy-Status"] = f"{PROXY_NAME}; {problem.proxy_status}"
    return response


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


def envelope(problem: Problem) -> dict[str, Any]:
    """`{"error": {"code", "message", "details", "request_id"}}`, extensions alongside."""
    error: dict[str, Any] = {"code": problem.status, "message": problem.title, "details": problem.detail}
    if problem.request_id:
        error["request_id"] = problem.request_id
    for key, value in problem.extensions.items():
        error.setdefault(key, value)
    return {"error": error}


def template_values(problem: Problem) -> dict[str, Any]:
    values = {**problem.extensions, **problem.to_dict()}
    values["upstream_status"] = _upstream_status(problem)
    return values


def _upstream_status(problem: Problem) -> int | None:
    if problem.proxy_status and problem.proxy_status.startswith("received-status="):
        return int(problem.proxy_status.split("=", 1)[1])
    return None


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """Replace `${name}` placeholders; a string that is one placeholder keeps the value's type.

    >>> fill({"code": "${status}", "msg": "Error ${status}: ${title}", "x": "${nope}"}, {"status": 409, "title": "Conflict"})
    {'code': 409, 'msg': 'Error 409: Conflict', 'x': None}
    """
    if isinstance(template, Mapping):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return values.get(whole.group(1))
        return _PLACEHOLDER.sub(lambda m: _inline(values.get(m.group(1))), template)
    return template


def _inline(value: Any) -> str:
    """A value inside a longer string: JSON's spelling (true, {"a": 1}), not Python's (True, {'a': 1})."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def text_page(problem: Problem) -> bytes:
    lines = [f"{problem.status} {problem.title}", "", problem.detail]
    if problem.request_id:
        lines += ["", f"Request ID: {problem.request_id}"]
    return ("\n".join(lines) + "\n").encode()


def html_page(problem: Problem) -> bytes:
    """A minimal, self-contained page; every value is escaped."""
    title = html.escape(f"{problem.status} {problem.title}")
    request_id = (
        f'<p>Request ID: <code>{html.escape(problem.request_id)}</code></p>' if problem.request_id else ""
    )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{title}</title></head><body><main><h1>{title}</h1>"
        f"<p>{html.escape(problem.detail)}</p>{request_id}</main></body></html>\n"
    ).encode()
