"""The `concurrency` block of a route (or of `defaults`): the conflict guard's settings.

A route's block is applied key by key over the `defaults` one; `concurrency:
false` turns the guard off for a route, `concurrency: true` (or `{}`) turns it
on with the defaults. Problems are reported like every other section's:

    routes[0].concurrency.etag: "version" is not body, pointer:/JSON/pointer or header:NAME
    routes[0].concurrency.lock: "redis://:***@cache:6379/x" is not local or redis://HOST[:PORT][/DB]
"""

from __future__ import annotations

import dataclasses
from typing import Any

from yarl import URL

from .keys import yaml_keys
from .problems import Checker
from .values import read_count, read_positive_duration, read_size
from ..core.pointer import is_pointer
from ..core.guard_settings import Concurrency, ETagSource, ResourceKey
from ..core.headers import TOKEN

CONCURRENCY_KEYS = yaml_keys(Concurrency)
_UNITS = {"max_body": read_size, "lock_timeout": read_positive_duration, "lock_lease": read_positive_duration,
          "max_waiters": read_count}
_READS = {"GET", "HEAD"}  # tagged, never locked: not writes to check


def check_concurrency(check: Checker, path: str, value: Any, base: Concurrency | None) -> Concurrency | None:
    """`base` with the keys of `value` applied, None when the guard is off; problems go to `check`."""
    if value is None or value is False:
        return None
    if value is True:
        return base or Concurrency()
    spec = check.mapping(path, value, CONCURRENCY_KEYS)
    if not isinstance(value, dict):
        return None  # reported: "must be a mapping"
    values: dict[str, Any] = check.units(path, {k: v for k, v in spec.items() if k in _UNITS}, _UNITS)
    if "etag" in spec:
        values["etag"] = _etag(check, f"{path}.etag", spec["etag"])
    if "require_if_match" in spec:
        values["require_if_match"] = check.flag(f"{path}.require_if_match", spec["require_if_match"])
    if "methods" in spec:
        values["methods"] = _methods(check, f"{path}.methods", spec["methods"])
    if "on_mismatch" in spec:
        values["on_mismatch"] = check.choice(f"{path}.on_mismatch", spec["on_mismatch"], (412, 409))
    if "lock" in spec:
        values["lock"] = _lock(check, f"{path}.lock", spec["lock"])
    if "on_lock_unavailable" in spec:
        values["on_lock_unavailable"] = check.choice(f"{path}.on_lock_unavailable", spec["on_lock_unavailable"],
                                                     ("fail", "forward"))
    if "key" in spec:
        values["key"] = _key(check, f"{path}.key", spec["key"])
    if "fencing_header" in spec:
        header = spec["fencing_header"]
        if header is None or (isinstance(header, str) and TOKEN.fullmatch(header)):
            values["fencing_header"] = header
        else:
            check.fail(f"{path}.fencing_header", header, "is not a header name (or null to send none)")
    # A converter's None is a problem reported; fencing_header's None is a choice (send no token).
    kept = {key: value for key, value in values.items() if value is not None or key == "fencing_header"}
    return dataclasses.replace(base or Concurrency(), **kept)


def _etag(check: Checker, path: str, value: Any) -> ETagSource | None:
    if value == "body":
        return ETagSource()
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        if kind == "pointer" and name and is_pointer(name):
            return ETagSource("pointer", name)
        if kind == "header" and TOKEN.fullmatch(name):
            return ETagSource("header", name)
    check.fail(path, value, "is not body, pointer:/JSON/pointer or header:NAME")
    return None


def _methods(check: Checker, path: str, value: Any) -> frozenset[str] | None:
    if not isinstance(value, list) or not value:
        check.fail(path, value, "must be a non-empty list of methods (PUT, PATCH, DELETE, ...)")
        return None
    methods = set()
    for method in value:
        if not isinstance(method, str) or not TOKEN.fullmatch(method):
            check.fail(path, method, "is not an HTTP method")
        elif method.upper() in _READS:
            check.fail(path, method, "is a read: reads get ETags, writes are checked (list PUT, PATCH, DELETE, ...)")
        else:
            methods.add(method.upper())
    return frozenset(methods) if len(methods) == len(value) else None


def _lock(check: Checker, path: str, value: Any) -> str | None:
    if value == "local":
        return value
    url = None
    if isinstance(value, str):
        try:
            url = URL(value)
        except ValueError:
            url = None
    database = url.path.strip("/") if url is not None else ""
    if url is not None and url.scheme in ("redis", "rediss") and url.host and not url.query_string \
            and (database == "" or (database.isascii() and database.isdigit() and len(database) <= 5)):
        return value
    shown = str(url.with_password("***")) if url is not None and url.password else value  # never quote a secret
    check.fail(path, shown, "is not local or redis://HOST[:PORT][/DB] (rediss:// for TLS)")
    return None


def _key(check: Checker, path: str, value: Any) -> ResourceKey | None:
    if value in ("path", "path_and_query"):
        return ResourceKey(value)
    if isinstance(value, str) and value.startswith("regex:"):
        pattern = check.regex(path, value.removeprefix("regex:"))
        return ResourceKey("regex", pattern) if pattern is not None else None
    check.fail(path, value, "is not path, path_and_query or regex:PATTERN")
    return None
