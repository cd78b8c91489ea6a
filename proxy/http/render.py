"""The one way an error leaves the proxy: a Problem rendered as a response.

Every error goes through `render`, whatever raised it: an intercepted
upstream response, a failure of the proxy's own (no route, body too large,
upstream down), a request aiohttp's parser rejected, a refused WebSocket
upgrade. It decides the format (from the route's policy and the client's
Accept), the JSON style and the headers:

    render(Problem(status=409, ...), Shape(policy, pages), origin="upstream",
           accept="text/html", accept_language="de-CH,de;q=0.9", keep=[("ETag", '"v7"')])
    -> 409, text/html page in German, ETag kept, Cache-Control: no-store,
       Vary: Accept, Vary: Accept-Language, Content-Language: de,
       X-Request-ID, Proxy-Status: errorproxy; received-status=409

The language is the pages' (`Pages.texts`): from Accept-Language when the
request's header is passed (an absent header as ""), else the brand's `lang`.
Only the proxy's own words are translated (`i18n.Catalog.localize`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

import orjson
from aiohttp import hdrs, web

from ..core.negotiation import FIXED, JSON, PROBLEM, Choice, choose
from ..core.problem import Problem
from ..core.settings import ErrorPolicy
from .aiohttp_responses import NoInventedHeaders
from .i18n import Catalog
from .pages import Pages

PROXY_NAME = "errorproxy"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Origin = Literal["upstream", "proxy"]


class ProblemResponse(NoInventedHeaders, web.Response):
    """A response the proxy renders itself; `format` is what the access log records."""

    format = "json"


@dataclass(frozen=True, slots=True)
class Shape:
    """How a route shapes its errors: its policy, its pages and its own template."""

    policy: ErrorPolicy = ErrorPolicy()
    pages: Pages | None = None  # None: the built-in pages, unbranded
    template: str | None = None

    def covers(self, origin: Origin) -> bool:
        """Whether errors from `origin` take this shape (else: plain problem+json)."""
        policy = self.policy
        return origin == "upstream" or ("proxy" in policy.origins and policy.format != "passthrough")


_builtin_pages: Pages | None = None


def _pages(shape: Shape) -> Pages:
    global _builtin_pages
    if shape.pages is not None:
        return shape.pages
    if _builtin_pages is None:
        _builtin_pages = Pages()
    return _builtin_pages


def render(
    problem: Problem,
    shape: Shape | None = None,
    *,
    origin: Origin = "proxy",
    accept: str | None = None,
    accept_language: str | None = None,
    choice: Choice | None = None,
    method: str = "GET",
    path: str = "",
    keep: Iterable[tuple[str, str]] = (),
) -> ProblemResponse:
    """The response for `problem`; aiohttp drops the body for HEAD.

    Without a `shape` (or one that does not cover `origin`) the answer is
    plain problem+json. `accept` is the request's Accept header, used when the
    policy's format is `auto`; `choice` forces a format instead. `keep` are
    upstream headers the client needs to act (ETag, Retry-After, ...).
    `accept_language` is the request's Accept-Language ("" when it has none):
    given, the language is negotiated; None, it is the default language.
    """
    keep = list(keep)
    catalog = _pages(shape or Shape()).texts.choose(accept_language)
    if shape is None or not shape.covers(origin):
        shape, choice, negotiated = None, choice or PROBLEM, False
    elif choice is not None:
        negotiated = False
    elif shape.policy.format == "auto":
        choice, negotiated = choose(accept), True
    else:
        choice, negotiated = FIXED.get(shape.policy.format, PROBLEM), False
    policy = shape.policy if shape is not None else None
    if choice.kind == "html":
        retry_after = next((value for name, value in keep if name.lower() == "retry-after"), None)
        page_shape = shape or Shape()
        body = _pages(page_shape).render(problem, page_shape.template, retry_after, catalog)
        content_type = "text/html; charset=utf-8"
    elif choice.kind == "text":
        body, content_type = text_page(problem, catalog), "text/plain; charset=utf-8"
    else:
        body, content_type = _json_body(catalog.localize(problem), choice, policy, method, path)
    response = ProblemResponse(status=problem.status, body=body)
    response.format = choice.kind
    headers = response.headers
    for name, value in keep:
        headers.add(name, value)
    headers[hdrs.CONTENT_TYPE] = content_type
    headers[hdrs.CACHE_CONTROL] = "no-store"
    if negotiated:
        headers.add(hdrs.VARY, "Accept")
    if accept_language is not None:
        headers.add(hdrs.VARY, "Accept-Language")
    # The language its texts were written in (RFC 9457 §3.1.3: a title is localized by negotiation).
    headers[hdrs.CONTENT_LANGUAGE] = catalog.language
    if problem.request_id:
        headers["X-Request-ID"] = problem.request_id
    if problem.proxy_status:
        headers["Proxy-Status"] = f"{PROXY_NAME}; {problem.proxy_status}"
    return response


def _json_body(problem: Problem, choice: Choice, policy: ErrorPolicy | None, method: str,
               path: str) -> tuple[bytes, str]:
    """The body and content type of `problem` in the policy's JSON style."""
    style = policy.json_style if policy is not None else "problem"
    if style == "envelope":
        return _json(envelope(problem)), "application/json"
    if style == "custom" and policy is not None and policy.json_template is not None:
        values = {**template_values(problem), "method": method, "path": path}
        return _json(fill(policy.json_template, values)), "application/json"
    return problem.to_json(), choice.media_type if choice is JSON else PROBLEM.media_type


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


def text_page(problem: Problem, catalog: Catalog | None = None) -> bytes:
    """`409 Conflict`, a blank line, the detail, and the request id, in `catalog`'s language."""
    if catalog is not None:
        problem = catalog.localize(problem)
    lines = [f"{problem.status} {problem.title}", "", problem.detail]
    if problem.request_id:
        label = catalog.pgettext("page.request_id", "Request ID:") if catalog is not None else "Request ID:"
        lines += ["", f"{label} {problem.request_id}"]
    return ("\n".join(lines) + "\n").encode()
