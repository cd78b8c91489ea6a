"""Field errors: what an upstream's 400 or 422 says about each field, in one shape.

A form needs to know which field to mark and what to say. Frameworks write
that in a dozen shapes; a rewritten problem carries it in one, the `errors`
extension of RFC 9457 §3's example, where `pointer` is a JSON Pointer
(RFC 6901) into the request document:

    [{"pointer": "/title", "detail": "field required"}]

An error about a query, path, header or cookie parameter names it instead,
with OpenAPI's `in`: `{"parameter": "q", "in": "query", "detail": "..."}`.
An error about the whole request (Django's `non_field_errors`, a FastAPI
`loc` of just `["body"]`) has `detail` alone.

Shapes read, the first that gives an entry wins:

    errors: [{field, message}]      also msg, detail, reason, description, defaultMessage, title
                                    for the text, and path, param, name, property, loc, pointer,
                                    source.pointer (JSON:API) for the place; plain strings too
    errors: {field: [messages]}     Laravel, Rails' errors hash; nested mappings and lists
    error: {errors: [...]}          the same list one level down (Google's JSON style)
    detail: [{loc, msg, type}]      FastAPI and pydantic: ["body", "title"] -> /title,
                                    ["query", "q"] -> parameter q in query
    invalid-params: [{name, reason}]   RFC 7807's example
    {field: [messages], ...}        Rails and Django REST framework, top level: only when every
                                    value is a list of strings, so that no other body is mistaken

Everything is bounded and scrubbed: at most MAX_ENTRIES entries from at most
MAX_SCANNED values looked at, a detail cut to MAX_DETAIL characters, a
place longer than MAX_POINTER dropped with its entry, and every string that
reaches the client (each message, each key of a place) goes through `scrub`:
an entry with anything unsafe is left out, not the whole list.

>>> read({"detail": [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}]})
[{'pointer': '/title', 'detail': 'field required'}]
>>> read({"errors": {"email": ["has already been taken"]}})
[{'pointer': '/email', 'detail': 'has already been taken'}]
>>> read({"message": "Not found"})
[]
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import unquote

from . import scrub
from .pointer import escape, is_pointer, unescape

MAX_ENTRIES = 50
MAX_DETAIL = 300
MAX_POINTER = 200
MAX_SCANNED = 500  # values looked at, kept or not: a 64 KiB body of errors is not read to its end
MAX_DEPTH = 8  # nested mappings of `errors: {address: {city: [...]}}`
_SUMMARY_NAMES = 5

# Where the text of an error object is, and where its place, in the order tried.
_TEXT_KEYS = ("detail", "message", "msg", "reason", "description", "defaultMessage", "title")
_PLACE_KEYS = ("source", "pointer", "loc", "field", "path", "param", "name", "property", "attribute")
# FastAPI's first `loc` element, and express-validator's `location`, when they name a parameter.
_PARAMETER_IN = {"query": "query", "path": "path", "params": "path", "header": "header", "headers": "header",
                 "cookie": "cookie", "cookies": "cookie"}
# Keys that hold errors about the whole request, not a field of it (Django, Django REST framework).
_WHOLE = frozenset({"non_field_errors", "__all__"})
_DOTTED = re.compile(r"[^.\[\]]+")  # "items[0].name" -> items, 0, name
_SPACE = re.compile(r"\s+")

Place = dict[str, str]  # {"pointer": "/title"}, {"parameter": "q", "in": "query"} or {} (the whole request)


def read(document: Any) -> list[dict[str, str]]:
    """The field errors in a parsed upstream JSON body, normalized, scrubbed and capped; [] if none.

    >>> read({"errors": [{"source": {"pointer": "/data/attributes/title"}, "detail": "can't be blank"}]})
    [{'pointer': '/data/attributes/title', 'detail': "can't be blank"}]
    >>> read({"detail": [{"loc": ["query", "limit"], "msg": "must be at most 100"}]})
    [{'parameter': 'limit', 'in': 'query', 'detail': 'must be at most 100'}]
    >>> read({"title": ["is too short", "is not unique"], "age": ["must be a number"]})[1:]
    [{'pointer': '/title', 'detail': 'is not unique'}, {'pointer': '/age', 'detail': 'must be a number'}]
    """
    if not isinstance(document, dict):
        return []
    budget = _Budget()
    for found in _sources(document):
        entries = []
        for place, text in found:
            if budget.spent():
                break
            entry = _entry(place, text)
            if entry is not None:
                entries.append(entry)
                if len(entries) == MAX_ENTRIES:
                    break
        if entries:
            return entries
    return []


def summary(entries: list[dict[str, str]]) -> str:
    """A one-line `detail` for `entries`: the first error when one field is wrong, else the fields' names.

    >>> summary([{"pointer": "/title", "detail": "field required"}])
    'title: field required'
    >>> summary([{"pointer": "/title", "detail": "required"}, {"pointer": "/tags/0", "detail": "too long"}])
    '2 fields are invalid: title, tags.0'
    >>> summary([{"detail": "Passwords do not match"}])
    'Passwords do not match'
    """
    names = list(dict.fromkeys(name for entry in entries if (name := _name(entry))))
    if len(names) <= 1:
        first = entries[0]
        name = _name(first)
        return f"{name}: {first['detail']}" if name else first["detail"]
    shown = ", ".join(names[:_SUMMARY_NAMES]) + (", ..." if len(names) > _SUMMARY_NAMES else "")
    return f"{len(names)} fields are invalid: {shown}"


def _name(entry: dict[str, str]) -> str:
    if "parameter" in entry:
        return entry["parameter"]
    return ".".join(unescape(token) for token in entry.get("pointer", "").split("/")[1:])


class _Budget:
    """Counts the values looked at, so that no body makes `read` work past MAX_SCANNED of them."""

    def __init__(self) -> None:
        self.left = MAX_SCANNED

    def spent(self) -> bool:
        self.left -= 1
        return self.left < 0


def _sources(document: dict) -> Iterator[Iterator[tuple[Place | None, Any]]]:
    """Each shape's (place, text) pairs, lazily: one shape at a time, in the order they are tried."""
    errors = document.get("errors")
    if isinstance(errors, list):
        yield _from_list(errors)
    elif isinstance(errors, dict):
        yield _from_mapping(errors, [], 0)
    nested = document.get("error")
    if isinstance(nested, dict) and isinstance(nested.get("errors"), list):
        yield _from_list(nested["errors"])
    for key in ("detail", "invalid-params"):
        if isinstance(document.get(key), list):
            yield _from_list(document[key])
    if all(isinstance(value, list) and all(isinstance(item, str) for item in value) for value in document.values()):
        yield _from_mapping(document, [], 0)


def _from_list(items: list) -> Iterator[tuple[Place | None, Any]]:
    for item in items:
        if isinstance(item, str):
            yield {}, item
        elif isinstance(item, dict):
            text = next((item[key] for key in _TEXT_KEYS if isinstance(item.get(key), str)), None)
            yield _place(item), text
        else:
            yield None, None  # counted against the budget all the same


def _from_mapping(errors: dict, path: list[str], depth: int) -> Iterator[tuple[Place | None, Any]]:
    """`{field: [messages]}`, `{field: message}`, nested: `{address: {city: [...]}}`, `{items: [{}, {name: [...]}]}`."""
    for key, value in errors.items():
        here = [*path, key]
        place = {} if not path and key in _WHOLE else _tokens_place(here)
        if isinstance(value, str):
            yield place, value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield place, item
                elif isinstance(item, dict) and depth < MAX_DEPTH:
                    yield from _from_mapping(item, [*here, str(index)], depth + 1)
                else:
                    yield None, None
        elif isinstance(value, dict) and depth < MAX_DEPTH:
            yield from _from_mapping(value, here, depth + 1)
        else:
            yield None, None


def _place(item: dict) -> Place | None:
    """Where an error object says it is; {} when it names no place, None when the place is unusable."""
    for key in _PLACE_KEYS:
        if key not in item:
            continue
        value = item[key]
        if key == "source":  # JSON:API: {"pointer": "/data/attributes/x"}, {"parameter": "q"} or {"header": "X"}
            if not isinstance(value, dict):
                continue
            if isinstance(value.get("pointer"), str):
                return _pointer_place(value["pointer"])
            for name, where in (("parameter", "query"), ("header", "header")):
                if isinstance(value.get(name), str):
                    return _parameter(value[name], where)
            continue
        if key == "loc":
            return _loc_place(value)
        if isinstance(value, list):  # Joi, Yup: ["items", 0, "name"]
            return _tokens_place(value)
        if not isinstance(value, str):
            return None
        where = _PARAMETER_IN.get(item.get("location"))  # express-validator: body, query, params, ...
        if where is not None:
            return _parameter(value, where)
        return _pointer_place(value) if value.startswith(("/", "#/")) else _tokens_place(_DOTTED.findall(value))
    return {}


def _loc_place(loc: Any) -> Place | None:
    """FastAPI's `loc`: ["body", "items", 0, "name"] -> /items/0/name; ["query", "q"] -> parameter q."""
    if not isinstance(loc, list) or not loc:
        return None
    first = loc[0]
    if first == "body":
        return _tokens_place(loc[1:])
    if first in ("query", "path", "header", "cookie") and len(loc) >= 2:
        return _parameter(loc[1], first)
    return _tokens_place(loc)  # plain pydantic: the model's own fields


def _pointer_place(text: str) -> Place | None:
    """A pointer as written, or as a URI fragment ("#/age", RFC 6901 §6: percent-encoded)."""
    if text.startswith("#"):
        text = unquote(text[1:])
    if not is_pointer(text):
        return None
    return _tokens_place([unescape(token) for token in text.split("/")[1:]])


def _tokens_place(tokens: list) -> Place | None:
    """A pointer made of keys and list indexes; [] is the whole request."""
    if not all(isinstance(token, (str, int)) and not isinstance(token, bool) for token in tokens):
        return None
    keys = [str(token) for token in tokens]
    # Each key is scrubbed alone: "/app/name" is a fine pointer, not the path it looks like.
    if not all(scrub.is_safe(key) for key in keys):
        return None
    return {"pointer": "".join("/" + escape(key) for key in keys)} if keys else {}


def _parameter(name: Any, where: str) -> Place | None:
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not name or not scrub.is_safe(name):
        return None
    return {"parameter": name, "in": where}


def _entry(place: Place | None, text: Any) -> dict[str, str] | None:
    """The client's entry, or None when the place is unusable or the text missing, unsafe or blank."""
    if place is None or not isinstance(text, str):
        return None
    if any(len(value) > MAX_POINTER for value in place.values()):
        return None  # a place cut short would point at the wrong field
    detail = _SPACE.sub(" ", text).strip()
    if not detail or not scrub.is_safe(text):
        return None
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 1] + "…"
    return {**place, "detail": detail}
