"""Validation of the error-rewriting keys a route inherits from `defaults`.

Split from `loader` so each module holds one idea; it reports through the same
problem collector, with the same `path: value message` lines.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Collection

from .keys import yaml_keys
from .problems import Checker
from .values import json_problems, key_path, read_size
from ..core.pointer import is_pointer
from ..core.settings import ErrorPolicy, ErrorRule, SuccessFalse
from ..core.status import StatusSet, is_status
from ..core.headers import TOKEN

POLICY_KEYS = yaml_keys(ErrorPolicy, {"rules": "errors"})  # `errors: [...]`, a list of rules
_RULE_KEYS = yaml_keys(ErrorRule)
_SUCCESS_FALSE_KEYS = yaml_keys(SuccessFalse)
_FORMATS = ("auto", "json", "html", "text", "passthrough")
_STYLES = ("problem", "envelope", "custom")
_ORIGINS = {"upstream": {"upstream"}, "proxy": {"proxy"}, "both": {"upstream", "proxy"}}


def check_policy(check: Checker, path: str, spec: dict[str, Any], base: ErrorPolicy = ErrorPolicy()) -> ErrorPolicy:
    """`base` with the keys in `spec` applied; problems go to `check`."""
    values: dict[str, Any] = {}
    if "intercept" in spec:
        intercept = _statuses(check, f"{path}.intercept", spec["intercept"], errors_only=True)
        values["intercept"] = intercept or base.intercept
    if "origins" in spec:
        origins = spec["origins"]
        if isinstance(origins, str) and origins in _ORIGINS:  # a list or mapping is unhashable
            values["origins"] = frozenset(_ORIGINS[origins])
        else:
            check.fail(f"{path}.origins", origins, "must be upstream, proxy or both")
    for key, choices in (("format", _FORMATS), ("json_style", _STYLES)):
        if key in spec:
            if spec[key] in choices:
                values[key] = spec[key]
            else:
                check.fail(f"{path}.{key}", spec[key], "must be one of " + ", ".join(choices))
    if "json_template" in spec:
        values["json_template"] = _json_template(check, f"{path}.json_template", spec["json_template"])
    if values.get("json_style") == "custom" and "json_template" not in spec and base.json_template is None:
        check.missing(f"{path}.json_template", "json_style custom needs a json_template mapping")
    for key in ("expose_upstream_detail", "field_errors"):
        if key in spec and (flag := check.flag(f"{path}.{key}", spec[key])) is not None:
            values[key] = flag
    if "max_error_body" in spec:
        values["max_error_body"] = _size(check, f"{path}.max_error_body", spec["max_error_body"], base.max_error_body)
    if "errors" in spec:
        rules = spec["errors"]
        if isinstance(rules, list):
            values["rules"] = tuple(
                rule for index, item in enumerate(rules)
                if (rule := _rule(check, f"{path}.errors[{index}]", item)) is not None
            )
        else:
            check.fail(f"{path}.errors", rules, "must be a list of rules")
    if "success_false" in spec:
        values["success_false"] = _success_false(check, f"{path}.success_false", spec["success_false"])
    return dataclasses.replace(base, **values)


def _json_template(check: Checker, path: str, value: Any) -> MappingProxyType | None:
    """The template of `json_style: custom`, if every part of it can be written as JSON.

    Checked here, so that `!!binary`, `!!set`, a date or an integer key is a
    config problem, not a failure of every error rendered with it.
    """
    if not isinstance(value, dict) or not value:
        check.fail(path, value, "must be a non-empty mapping")
        return None
    problems = list(json_problems(value, path))
    for where, item, message in problems:
        check.fail(where, item, message)
    return None if problems else MappingProxyType(value)


def _statuses(check: Checker, path: str, value: Any, errors_only: bool = False) -> StatusSet | None:
    """A status list; with `errors_only`, of error statuses alone (what the proxy may rewrite)."""
    items = value if isinstance(value, list) else [value]
    try:
        statuses = StatusSet.parse(items)
    except ValueError:
        statuses = None
    if statuses is not None and not (errors_only and any(low < 400 or high > 599 for low, high in statuses.ranges)):
        return statuses
    for item in items:  # each one that is not a status (its ValueError may be int()'s own), or not an error's
        try:
            ((low, high),) = StatusSet.parse([item]).ranges
        except ValueError:
            check.fail(path, item, "is not a status, class or range")
            continue
        if errors_only and (low < 400 or high > 599):
            check.fail(path, item, "is not an error status (400-599): only errors are rewritten")
    return None


def _size(check: Checker, path: str, value: Any, fallback: int) -> int:
    converted = check.convert(path, value, read_size)
    return fallback if converted is None else converted


def _status(check: Checker, path: str, value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and is_status(value) and value >= 400:
        return value
    check.fail(path, value, "is not an error status (400-599)")
    return None


def _text(check: Checker, path: str, value: Any) -> str | None:
    if isinstance(value, str):
        return value
    check.fail(path, value, "must be a string")
    return None


def _pointer(check: Checker, path: str, value: Any) -> str | None:
    if is_pointer(value):
        return value
    check.fail(path, value, "is not a JSON pointer (e.g. /error/message)")
    return None


def _with_status(check: Checker, path: str, value: Any, keys: Collection[str], why: str) -> dict[str, Any] | None:
    """`value` as a mapping of `keys` that has a `status`, or None (each problem reported once)."""
    spec = check.mapping(path, value, keys, required=True)
    if not isinstance(value, dict) or not value:
        return None  # reported; "status: missing" would only repeat it
    if "status" not in spec:
        check.missing(f"{path}.status", why)
        return None
    return spec


def _rule(check: Checker, path: str, value: Any) -> ErrorRule | None:
    spec = _with_status(check, path, value, _RULE_KEYS, "a rule needs the status it applies to")
    if spec is None:
        return None
    status = _statuses(check, f"{path}.status", spec["status"])
    if status is not None and not status.ranges:  # `status: []`: a rule that could never apply
        check.fail(f"{path}.status", spec["status"], "must name at least one status")
        status = None
    body_matches = check.regex(f"{path}.body_matches", spec["body_matches"]) if "body_matches" in spec else None
    json_equals = []
    for pointer, expected in check.mapping(f"{path}.json_equals", spec.get("json_equals"), None).items():
        if _pointer(check, f"{path}.json_equals", pointer) is None:
            continue
        # A value JSON cannot hold (an unquoted date, say) would silently never match.
        unmatchable = list(json_problems(expected, key_path(f"{path}.json_equals", pointer)))
        for where, item, message in unmatchable:
            check.fail(where, item, message)
        if not unmatchable:
            json_equals.append((pointer, expected))
    header_matches = []
    for name, pattern in check.mapping(f"{path}.header_matches", spec.get("header_matches"), None).items():
        if not TOKEN.fullmatch(name):
            check.fail(f"{path}.header_matches", name, "is not a header name")
            continue
        compiled = check.regex(f"{path}.header_matches.{name}", pattern)
        if compiled is not None:
            header_matches.append((name, compiled))
    texts = {key: _text(check, f"{path}.{key}", spec[key]) for key in ("type", "title", "detail") if key in spec}
    detail_pointer = _pointer(check, f"{path}.detail_pointer", spec["detail_pointer"]) if "detail_pointer" in spec else None
    extensions = []
    for name, pointer in check.mapping(f"{path}.extensions", spec.get("extensions"), None).items():
        if _pointer(check, key_path(f"{path}.extensions", name), pointer) is not None:
            extensions.append((name, pointer))
    rewrite = _status(check, f"{path}.rewrite_status", spec["rewrite_status"]) if "rewrite_status" in spec else None
    if status is None:
        return None
    return ErrorRule(
        status=status, body_matches=body_matches, json_equals=tuple(json_equals),
        header_matches=tuple(header_matches), detail_pointer=detail_pointer,
        extensions=tuple(extensions), rewrite_status=rewrite, **texts,
    )


def _success_false(check: Checker, path: str, value: Any) -> SuccessFalse | None:
    spec = _with_status(check, path, value, _SUCCESS_FALSE_KEYS, "the error status to answer with")
    if spec is None:
        return None
    status = _status(check, f"{path}.status", spec["status"])
    max_body = _size(check, f"{path}.max_body", spec.get("max_body", "64KiB"), 64 * 1024)
    pointer = _pointer(check, f"{path}.pointer", spec.get("pointer", "/success")) or "/success"
    return SuccessFalse(status=status, max_body=max_body, pointer=pointer) if status else None
