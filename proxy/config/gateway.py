"""The `cors` and `maintenance` blocks of a route (or of `defaults`).

A route's block is applied key by key over the `defaults` one, like the
rest of the route policy. `cors: null` (or `false`) turns CORS off for a
route; `maintenance: true` is `maintenance: {enabled: true}`. Problems are
reported like every other section's:

>>> from .problems import Checker, Converter
>>> check = Checker()
>>> check_cors(check, "routes[0].cors", {"allow_origins": ["https://App.example.com:443/"]}, None) is None
True
>>> check_maintenance(check, "defaults.maintenance", {"retry_after": "soon", "allow": ["10.0.0.0/33"]}, None).enabled
False
>>> print("\\n".join(check.problems))  # doctest: +NORMALIZE_WHITESPACE
routes[0].cors.allow_origins[0]: "https://App.example.com:443/" is not an origin (scheme://host[:port],
    no path: https://app.example.com)
defaults.maintenance.retry_after: "soon" is not a duration
defaults.maintenance.allow[0]: "10.0.0.0/33" is not an IP address or CIDR range
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from yarl import URL

from .keys import yaml_keys
from .problems import Checker, Converter
from .values import read_duration
from ..core.settings import Cors, Maintenance
from ..core.headers import TOKEN

CORS_KEYS = yaml_keys(Cors)
MAINTENANCE_KEYS = yaml_keys(Maintenance)
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
BAD = object()  # a value reported as a problem (None is a value some keys take)
MAX_MESSAGE = 1000  # characters of a maintenance message: a sentence or two, not a page


def check_cors(check: Checker, path: str, value: Any, base: Cors | None) -> Cors | None:
    """`base` with the keys of `value` applied, None when CORS is off; problems go to `check`."""
    if value is None or value is False:
        return None
    spec = check.mapping(path, value, CORS_KEYS)
    if not isinstance(value, dict):
        return None  # reported: "must be a mapping"
    values: dict[str, Any] = {}
    if "allow_origins" in spec:
        values["allow_origins"] = _origins(check, f"{path}.allow_origins", spec["allow_origins"])
    elif base is None:
        check.missing(f"{path}.allow_origins", 'the origins whose pages may read this route\'s errors (or ["*"])')
        values["allow_origins"] = BAD
    if "allow_credentials" in spec:
        values["allow_credentials"] = _flag(check, f"{path}.allow_credentials", spec["allow_credentials"])
    for key in ("expose_headers", "allow_methods"):
        if key in spec:
            values[key] = _names(check, f"{path}.{key}", spec[key], upper=key == "allow_methods")
    if "allow_headers" in spec:  # null: echo the names the browser asks for
        given = spec["allow_headers"]
        values["allow_headers"] = None if given is None else _names(check, f"{path}.allow_headers", given)
    if "preflight" in spec:
        preflight = check.choice(f"{path}.preflight", spec["preflight"], ("upstream", "proxy"))
        values["preflight"] = BAD if preflight is None else preflight
    if "max_age" in spec:
        values["max_age"] = _convert(check, f"{path}.max_age", spec["max_age"], read_duration)
    if any(item is BAD for item in values.values()):
        return None
    cors = dataclasses.replace(base, **values) if base is not None else Cors(**values)
    if "*" in cors.allow_origins and cors.allow_credentials:
        check.fail(f"{path}.allow_origins", "*", "cannot be used with allow_credentials: true: list the origins "
                   "(browsers refuse credentials with a wildcard, and echoing any origin would let every site read them)")
        return None
    return cors


def check_maintenance(check: Checker, path: str, value: Any, base: Maintenance | None) -> Maintenance:
    """`base` (or no maintenance) with the keys of `value` applied; problems go to `check`."""
    base = base or Maintenance()
    if value is None:
        return base
    if isinstance(value, bool):
        return dataclasses.replace(base, enabled=value)
    spec = check.mapping(path, value, MAINTENANCE_KEYS)
    values: dict[str, Any] = {}
    if "enabled" in spec:
        values["enabled"] = _flag(check, f"{path}.enabled", spec["enabled"])
    if "retry_after" in spec:
        seconds = _convert(check, f"{path}.retry_after", spec["retry_after"], read_duration)
        values["retry_after"] = seconds if seconds is BAD else math.ceil(seconds)  # Retry-After is whole seconds
    if "message" in spec:
        message = spec["message"]
        if message is None or (isinstance(message, str) and message.strip() and len(message) <= MAX_MESSAGE):
            values["message"] = message.strip() if message is not None else None  # null: the stock text
        else:
            check.fail(f"{path}.message", message, f"must be a non-empty string of at most {MAX_MESSAGE} characters")
            values["message"] = BAD
    if "allow" in spec:
        values["allow"] = check.networks(f"{path}.allow", spec["allow"])
    if "file" in spec:
        file = spec["file"]
        if file is None or (isinstance(file, str) and file.startswith("/") and "\0" not in file):
            values["file"] = file  # null: a route leaves the defaults' file alone
        else:
            check.fail(f"{path}.file", file, "must be an absolute path (/etc/errorproxy/maintenance), or null")
            values["file"] = BAD
    return dataclasses.replace(base, **{key: item for key, item in values.items() if item is not BAD})


def _convert(check: Checker, path: str, value: Any, converter: Converter) -> Any:
    converted = check.convert(path, value, converter)
    return BAD if converted is None else converted


def _flag(check: Checker, path: str, value: Any) -> Any:
    flag = check.flag(path, value)
    return BAD if flag is None else flag


def _names(check: Checker, path: str, value: Any, upper: bool = False) -> Any:
    """A list of methods or header names (RFC 9110 tokens), or BAD."""
    if not isinstance(value, list):
        check.fail(path, value, "must be a list of " + ("methods" if upper else "header names"))
        return BAD
    names = []
    for index, item in enumerate(value):
        if isinstance(item, str) and TOKEN.fullmatch(item):
            names.append(item.upper() if upper else item)
        else:
            check.fail(f"{path}[{index}]", item, "is not " + ("an HTTP method" if upper else "a header name"))
    return tuple(dict.fromkeys(names)) if len(names) == len(value) else BAD


def _origins(check: Checker, path: str, value: Any) -> Any:
    if not isinstance(value, list) or not value:
        check.fail(path, value, 'must be a non-empty list of origins (https://app.example.com) or ["*"]')
        return BAD
    origins = []
    for index, item in enumerate(value):
        origin = origin_of(item)
        if origin is None:
            hint = _hint(item)
            check.fail(f"{path}[{index}]", item, "is not an origin (scheme://host[:port], no path"
                       + (f": {hint})" if hint else ")"))
        else:
            origins.append(origin)
    return tuple(dict.fromkeys(origins)) if len(origins) == len(value) else BAD


def origin_of(value: Any) -> str | None:
    """An `allow_origins` entry as browsers write Origin: lower case, without a default port.

    >>> origin_of("HTTPS://App.Example.com:443"), origin_of("http://localhost:5173"), origin_of("*")
    ('https://app.example.com', 'http://localhost:5173', '*')
    >>> origin_of("https://*.example.com"), origin_of("app.example.com"), origin_of("https://a.com/")
    ('https://*.example.com', None, None)
    """
    if value == "*":
        return value
    if not isinstance(value, str) or len(value) > 300:
        return None
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS or not rest:
        return None
    host, _, port = rest.lower().rpartition(":") if not rest.endswith("]") and ":" in rest else (rest.lower(), "", "")
    if not _HOST.fullmatch(host) or (port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)):
        return None
    if port and int(port) == _DEFAULT_PORTS[scheme]:
        port = ""
    return f"{scheme}://{host}" + (f":{int(port)}" if port else "")


def _hint(value: Any) -> str | None:
    """What a near-miss origin probably meant (a trailing slash, a path, the default port)."""
    if not isinstance(value, str) or len(value) > 300:
        return None
    try:
        url = URL(value)
    except (ValueError, TypeError):
        return None
    if url.scheme not in _DEFAULT_PORTS or not url.host:
        return None
    return origin_of(str(url.origin()))
