"""The conflict guard's decisions, pure: which ETag a representation has, and whether
a conditional request may go on (RFC 9110 §13.1, evaluated in §13.2.2's order).

    >>> current = Current(exists=True, etag=EntityTag("v7"))
    >>> evaluate_write(parse_condition(['"v7"']), None, current)
    <Verdict.PROCEED: 'proceed'>
    >>> evaluate_write(parse_condition(['"v6"']), None, current)
    <Verdict.CHANGED: 'changed'>
    >>> evaluate_write(None, parse_condition(["*"]), current)
    <Verdict.EXISTS: 'exists'>
    >>> not_modified(parse_condition(['W/"v7"']), EntityTag("v7"))
    True
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from .etag import (  # noqa: F401  (parse_condition: for callers and the examples)
    Condition, EntityTag, from_body, from_version, parse_condition, parse_etag, strong_match, weak_match,
)
from .pointer import MISSING, resolve
from .routing import normalize_path
from .guard_settings import Concurrency, ETagSource, ResourceKey


class Verdict(enum.Enum):
    PROCEED = "proceed"  # every precondition holds: forward the write
    CHANGED = "changed"  # If-Match names other ETags than the current one
    GONE = "gone"  # If-Match, but the resource has no current representation
    EXISTS = "exists"  # If-None-Match: * (create only), or a listed ETag, and the resource has it
    UNVERIFIABLE = "unverifiable"  # the resource exists, but its ETag cannot be computed


@dataclass(frozen=True, slots=True)
class Current:
    """What the upstream holds for a resource right now."""

    exists: bool  # it answered the GET 2xx (404 and 410: it does not)
    etag: EntityTag | None = None  # None: no strong ETag can be had (too large, no version)
    own: bool = False  # the ETag is the upstream's own (so it may check If-Match itself)
    why_none: str = ""  # why there is no ETag, for the problem's detail


def evaluate_write(if_match: Condition | None, if_none_match: Condition | None, current: Current) -> Verdict:
    """Whether a write may be forwarded, given its preconditions and the current representation.

    If-Match uses the strong comparison; `*` asks only that the resource
    exist. If-None-Match uses the weak one; `*` asks that it not exist
    (create only). When an ETag is needed and cannot be computed the answer
    is UNVERIFIABLE: the write is refused, never let through unchecked.

    >>> gone = Current(exists=False)
    >>> evaluate_write(parse_condition(["*"]), None, gone), evaluate_write(None, parse_condition(["*"]), gone)
    (<Verdict.GONE: 'gone'>, <Verdict.PROCEED: 'proceed'>)
    >>> evaluate_write(parse_condition(['"a"']), None, Current(exists=True))
    <Verdict.UNVERIFIABLE: 'unverifiable'>
    """
    if if_match is not None:
        if not current.exists:
            return Verdict.GONE
        if not if_match.any:
            if current.etag is None:
                return Verdict.UNVERIFIABLE
            if not any(strong_match(tag, current.etag) for tag in if_match.tags):
                return Verdict.CHANGED
    if if_none_match is not None and current.exists:
        if if_none_match.any:
            return Verdict.EXISTS
        if current.etag is None:
            return Verdict.UNVERIFIABLE
        if any(weak_match(tag, current.etag) for tag in if_none_match.tags):
            return Verdict.EXISTS
    return Verdict.PROCEED


def not_modified(if_none_match: Condition | None, etag: EntityTag) -> bool:
    """Whether a GET or HEAD is answered 304: If-None-Match lists `etag` (weakly) or is `*`."""
    if if_none_match is None:
        return False
    return if_none_match.any or any(weak_match(tag, etag) for tag in if_none_match.tags)


def upstream_etag(headers: Mapping[str, str]) -> EntityTag | None:
    """The upstream's own ETag when it is strong, which the guard keeps; a weak one cannot
    guard a write (If-Match compares strongly), so the guard computes its own instead.

    >>> upstream_etag({"ETag": '"v7-doc"'}), upstream_etag({"ETag": 'W/"v7"'})
    (EntityTag(opaque='v7-doc', weak=False), None)
    """
    tag = parse_etag(headers.get("ETag"))
    return tag if tag is not None and not tag.weak else None


def etag_from_header(source: ETagSource, headers: Mapping[str, str]) -> EntityTag | None:
    """For `header:NAME`: the ETag its value gives, or None when it is absent."""
    return from_version(headers.get(source.name))


def etag_from_body(source: ETagSource, body: bytes, document: Any = MISSING) -> EntityTag | None:
    """For `body`: the hash of the bytes. For `pointer:/p`: the value there in the parsed
    JSON `document` (MISSING when the body is not JSON), or None without one.

    >>> etag_from_body(ETagSource("pointer", "/version"), b"", {"id": 1, "version": 7})
    EntityTag(opaque='7', weak=False)
    """
    if source.kind == "body":
        return from_body(body)
    value = resolve(document, source.name)
    return None if value is MISSING else from_version(value)


def parse_json(body: bytes) -> Any:
    """The JSON document in `body`, or MISSING (orjson first; json for what orjson refuses).

    >>> parse_json(b'{"version": 7}')
    {'version': 7}
    >>> parse_json(b"<html>") is MISSING
    True
    """
    try:
        return orjson.loads(body)
    except ValueError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return MISSING


def resource_key(key: ResourceKey, target: str) -> str:
    """The lock key of a request, from the target the upstream receives (path and query).

    >>> import re
    >>> resource_key(ResourceKey(), "/documents/%34%32/./?fields=x")
    '/documents/42/'
    >>> resource_key(ResourceKey("path_and_query"), "/documents/42?fields=x")
    '/documents/42?fields=x'
    >>> resource_key(ResourceKey("regex", re.compile(r"^(/documents/\\d+)")), "/documents/42/comments")
    '/documents/42'
    """
    path = normalize_path(target)
    if key.kind == "path_and_query":
        _, mark, query = target.partition("?")
        return path + mark + query
    if key.kind == "regex" and key.pattern is not None:
        found = key.pattern.search(path)
        if found is not None:
            group = found.group(1) if key.pattern.groups else None
            return group if group is not None else found.group(0)
    return path


def describe(concurrency: Concurrency) -> str:
    """What the guard computes ETags from, for a problem's detail.

    >>> describe(Concurrency())
    'its representation'
    """
    source = concurrency.etag
    if source.kind == "body":
        return "its representation"
    return f"its version at {source.name}" if source.kind == "pointer" else f"its {source.name} header"
