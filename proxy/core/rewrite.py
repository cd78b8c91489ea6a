"""Turn an upstream error response into a Problem: the heart of errorproxy.

Input is what the proxy saw (status, headers, and the body read up to the
route's cap); output is a Problem whose every upstream-derived string has been
checked by `scrub`. Pure: no I/O, no aiohttp.web.

    upstream 409, ETag "v7", {"error": {"message": "Version conflict"}, "currentVersion": 7}
    -> Problem(status=409, title="Conflict", detail="Version conflict",
               extensions={"currentVersion": 7, "current_etag": '"v7"'})

What a client needs to act is kept without a rule: the field errors of a 400
or 422 as one `errors` extension (`field_errors`), the version fields of a
409 or 412 under their own names (`versions`), the current ETag of the
concurrency statuses.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any, Mapping

from . import field_errors, scrub, versions
from .pointer import MISSING, resolve
from .reply import Parsed, UpstreamReply, decode_body, parse
from .problem import CONCURRENCY_STATUSES, Problem, default_detail
from .settings import ErrorPolicy, ErrorRule, SuccessFalse
from .status import reason

log = logging.getLogger("errorproxy.intercept")
_UNSCANNED = object()  # normalize's `unsafe` when the caller has not scanned the body

# Where APIs commonly put their human message, tried in order when no pointer is set.
COMMON_DETAIL_POINTERS = ("/detail", "/message", "/error/message", "/error", "/errors/0/message", "/error_description")
_PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance")
# `/errors/0/message` is a field's message: with the field errors read, their summary says more.
_FIELD_DETAIL_POINTERS = tuple(pointer for pointer in COMMON_DETAIL_POINTERS if not pointer.startswith("/errors/"))
FIELD_ERROR_STATUSES = frozenset({400, 422})
VERSION_STATUSES = frozenset({409, 412})
_MAX_TEXT_DETAIL = 300
_TAG = re.compile(r"<[^<>]{0,2000}>")
_SPACE = re.compile(r"\s+")
# Left in a detail once white space is one space: control characters (a NUL, a terminal's escape
# sequences) and the marks that reorder text (a right-to-left override), which no client should show.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TITLE = re.compile(r"<title[^>]{0,200}>([^<]{1,300})</title>", re.IGNORECASE)


def select_rule(policy: ErrorPolicy, reply: UpstreamReply, parsed: Parsed) -> ErrorRule | None:
    """The first rule whose conditions all hold."""
    for rule in policy.rules:
        if reply.status not in rule.status:
            continue
        if rule.body_matches is not None and rule.body_matches.search(parsed.text) is None:
            continue
        if not all(_same_json(resolve(parsed.document, pointer), value) for pointer, value in rule.json_equals):
            continue
        if any(pattern.search(reply.headers.get(name, "")) is None for name, pattern in rule.header_matches):
            continue
        return rule
    return None


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's, false is not 0 and true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[key], b[key]) for key in a)
    return a == b


def normalize(
    policy: ErrorPolicy,
    reply: UpstreamReply,
    parsed: Parsed,
    rule: ErrorRule | None,
    *,
    instance: str | None,
    request_id: str,
    status: int | None = None,
    unsafe: str | None | object = _UNSCANNED,
) -> Problem:
    """The Problem for an intercepted upstream error. `status` overrides (legacy 200 mapping);
    `unsafe` is the body's scrub verdict when the caller has it already (`_unsafe`)."""
    final = status or (rule.rewrite_status if rule and rule.rewrite_status else reply.status)
    document = parsed.document
    upstream_problem = document if reply.media_type == "application/problem+json" and isinstance(document, dict) else None
    if unsafe is _UNSCANNED:
        unsafe = _unsafe(parsed)
    if unsafe:
        log.warning(
            "upstream %s body scrubbed (%s) request_id=%s body=%r",
            reply.status, unsafe, request_id, parsed.text[:2000],
        )

    problem = Problem(status=final, instance=instance, request_id=request_id,
                      proxy_status=f"received-status={reply.status}")
    if upstream_problem is not None and final == reply.status:
        for member in ("type", "title"):
            if isinstance(upstream_problem.get(member), str) and scrub.is_safe(upstream_problem[member]):
                setattr(problem, member, upstream_problem[member])
        for key, value in upstream_problem.items():
            if key not in _PROBLEM_MEMBERS and key != "request_id" and scrub.find_unsafe_in_json(value) is None:
                problem.extensions[key] = value
    fields = (field_errors.read(document)
              if final in FIELD_ERROR_STATUSES and policy.field_errors and policy.expose_upstream_detail else [])
    if fields:
        problem.extensions["errors"] = fields  # in place of an upstream problem's own, whatever its shape
    detail = _detail(policy, rule, reply, parsed, upstream_problem, unsafe,
                     _FIELD_DETAIL_POINTERS if fields else COMMON_DETAIL_POINTERS)
    problem.detail = detail or (field_errors.summary(fields) if fields else default_detail(final))
    if final in VERSION_STATUSES:
        # A rule's extension that reads the same field (current_version: /currentVersion) renames it.
        taken = {pointer for _, pointer in rule.extensions} if rule is not None else set()
        for name, value in versions.read(document).items():
            if f"/{name}" not in taken and f"/error/{name}" not in taken:
                problem.extensions.setdefault(name, value)
    if rule is not None:
        problem.type = rule.type or problem.type
        problem.title = rule.title or (problem.title if final == reply.status else reason(final))
        for name, pointer in rule.extensions:
            value = resolve(document, pointer)
            if value is not MISSING and scrub.find_unsafe_in_json(value) is None:
                problem.extensions[name] = value
    if final in CONCURRENCY_STATUSES and "ETag" in reply.headers:
        etag = reply.headers["ETag"]
        # Header bytes arrive as they came (obs-text as surrogates): only a value JSON can carry
        # verbatim, for the client to send back in If-Match, becomes a member.
        if etag.isascii() and etag.isprintable():
            problem.extensions.setdefault("current_etag", etag)
    return problem


def _unsafe(parsed: Parsed) -> str | None:
    if parsed.document is not MISSING:
        return scrub.find_unsafe_in_json(parsed.document)
    return scrub.unsafe_reason(parsed.text) if parsed.text else None


def _detail(policy: ErrorPolicy, rule: ErrorRule | None, reply: UpstreamReply, parsed: Parsed,
            upstream_problem: dict | None, unsafe: str | None,
            pointers: tuple[str, ...] = COMMON_DETAIL_POINTERS) -> str | None:
    """The upstream's own message, when one is found and safe; `unsafe` is the body's verdict."""
    if rule is not None and rule.detail:
        return rule.detail
    if rule is not None and rule.detail_pointer is not None:
        return _safe_text(resolve(parsed.document, rule.detail_pointer))
    if not policy.expose_upstream_detail:
        return None
    if upstream_problem is not None:
        return _safe_text(upstream_problem.get("detail"))
    if parsed.document is not MISSING:
        for pointer in pointers:
            found = _safe_text(resolve(parsed.document, pointer))
            if found:
                return found
        return None
    return _text_detail(reply, parsed.text, unsafe)


def _safe_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = _INVISIBLE.sub("", _SPACE.sub(" ", value)).strip()
    if not text or len(text) > _MAX_TEXT_DETAIL or not scrub.is_safe(value):
        return None
    return text


def _text_detail(reply: UpstreamReply, text: str, unsafe: str | None) -> str | None:
    """A short, safe line from a text, HTML or XML body (`unsafe`: the whole body's verdict,
    passed in so a long body is scanned once)."""
    media = reply.media_type
    if "html" in media or "xml" in media:
        if unsafe:
            return None
        title = _TITLE.search(text)
        text = title.group(1) if title and "html" in media else _TAG.sub(" ", text)
        text = html.unescape(text)
    elif media and not media.startswith("text/"):
        return None
    return _safe_text(text)


def success_false(rule: SuccessFalse, parsed: Parsed) -> bool:
    """Whether a legacy 200 body says it failed (`{"success": false, ...}`)."""
    return resolve(parsed.document, rule.pointer) is False


def body_cap(policy: ErrorPolicy, status: int, media_type: str) -> int | None:
    """How much of an upstream body `rewrite` may need, or None: the response streams untouched.

    Decided from the status line and headers alone, before any body byte is read.

    >>> body_cap(ErrorPolicy(), 409, "application/json")
    65536
    >>> body_cap(ErrorPolicy(), 200, "application/json") is None
    True
    """
    if policy.intercepts(status):
        return policy.max_error_body
    legacy = policy.success_false
    if legacy is not None and status == 200 and "json" in media_type:
        return legacy.max_body
    return None


def rewrite(policy: ErrorPolicy, status: int, headers: Mapping[str, str], raw: bytes | None, *,
            instance: str | None, request_id: str) -> Problem | None:
    """The whole interception decision: the Problem an upstream response becomes, or None to pass it on.

    `raw` is the body as received, read up to `body_cap`, or None when it was
    larger (then it is not parsed). A response passes on when no rule claims
    it and its status is not intercepted, or when a legacy 200 does not say
    `"success": false`.

    The decision depends on nothing but the policy, the status, the headers
    in `policy.read_headers` and the body, so it is remembered (see `_Decisions`)
    for bodies up to `_REMEMBERED_BODY` bytes, and only the request's own
    members (`instance`, `request_id`) are filled in afresh.
    """
    key = None
    if raw is not None and len(raw) <= _REMEMBERED_BODY:
        key = (status, raw, *map(headers.get, policy.read_headers))
        known = _decisions.get(policy, key)
        if known is not _UNKNOWN:
            return _for_request(known, instance, request_id)
    problem, remember = _decide(policy, status, headers, raw, instance=instance, request_id=request_id)
    if key is not None and remember:
        _decisions.put(policy, key, problem)
    return problem


def _decide(policy: ErrorPolicy, status: int, headers: Mapping[str, str], raw: bytes | None, *,
            instance: str | None, request_id: str) -> tuple[Problem | None, bool]:
    """`rewrite`'s decision, and whether it may be remembered (not when the body was scrubbed: that is logged)."""
    legacy = None if policy.intercepts(status) else policy.success_false
    cap = legacy.max_body if legacy is not None else policy.max_error_body
    reply = UpstreamReply(status, headers, decode_body(raw, headers.get("Content-Encoding", ""), cap))
    parsed = parse(reply, reply.body)
    if legacy is not None:
        if not success_false(legacy, parsed):
            return None, True
        rule, final = None, legacy.status
    else:
        rule, final = select_rule(policy, reply, parsed), None
        if rule is None and status not in policy.intercept:
            return None, True
    unsafe = _unsafe(parsed)
    problem = normalize(policy, reply, parsed, rule, instance=instance, request_id=request_id, status=final,
                        unsafe=unsafe)
    return problem, unsafe is None


def _for_request(problem: Problem | None, instance: str | None, request_id: str) -> Problem | None:
    """A remembered decision, for this request: its own copy, with its own members."""
    if problem is None:
        return None
    return Problem(status=problem.status, title=problem.title, detail=problem.detail, type=problem.type,
                   instance=instance, request_id=request_id, extensions=dict(problem.extensions),
                   proxy_status=problem.proxy_status)


_REMEMBERED_BODY = 8 * 1024  # larger error bodies are worked out each time
_UNKNOWN = object()


class _Decisions:
    """The decisions of the last `size` distinct upstream errors, per policy.

    A legacy service answers most of its errors with a handful of bodies (the
    same 409 for every stale write to a document, the same 503 while it is
    down): each is parsed, scrubbed and normalized once, not on every
    response. Bodies that vary (a timestamp, an id) only cost a lookup. The
    oldest decision goes first once `size` are kept; a reload's new policies
    start afresh (they are other objects: the old ones' decisions age out).
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._kept: dict[tuple, tuple[ErrorPolicy, Problem | None]] = {}

    def get(self, policy: ErrorPolicy, key: tuple) -> Problem | None | object:
        kept = self._kept.get((id(policy), *key))
        return kept[1] if kept is not None and kept[0] is policy else _UNKNOWN

    def put(self, policy: ErrorPolicy, key: tuple, problem: Problem | None) -> None:
        kept = self._kept
        if len(kept) >= self._size:
            del kept[next(iter(kept))]
        stored = None if problem is None else _for_request(problem, None, "")
        kept[(id(policy), *key)] = (policy, stored)


_decisions = _Decisions()
