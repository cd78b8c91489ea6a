"""The sections that make routes: `server`, `upstreams.NAME`, `routes[N]` and their `match`.

Each `check_*` function converts one section into its settings piece (or
None) and records every problem through the `Checker`, like `check_policy`,
`check_brand` and `check_ops` for theirs. The accepted keys are read off the
settings dataclasses (`keys.yaml_keys`), and so are the converters of the unit
keys: a float field is a duration, an int field a count, or a byte size when
named in `_BYTE_SIZES`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from yarl import URL

from .brand import check_template_name
from .concurrency import check_concurrency
from .gateway import check_cors, check_maintenance
from .keys import field_types, yaml_keys
from .policy import POLICY_KEYS, check_policy
from .problems import HOST, Checker, Converter
from .resilience import RESILIENCE_KEYS, check_resilience
from .transport import check_target, check_upstream_tls
from .values import read_count, read_duration, read_positive_duration, read_size
from ..core.guard_settings import Concurrency
from ..core.settings import Cors, ErrorPolicy, Maintenance, Match, Route, ServerSettings, UpstreamSettings
from ..core.headers import TOKEN

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_BYTE_SIZES = {"max_line_size"}  # int fields counted in bytes, so units apply (16KiB); other ints are counts
_AT_LEAST_ONE = {"max_connections", "max_line_size", "max_headers"}  # 0 would refuse everything
_ABOVE_ZERO = {"connect_timeout", "read_timeout"}  # 0 would time every request out at once
# The highest values, each with how a problem shows it. The retry delay doubles with each retry:
# 2**1024 times retry_backoff is past a float (OverflowError). A poll longer than a few milliseconds
# is a CPU spent waiting: the window is for answers due in microseconds.
_AT_MOST: dict[str, tuple[float, str]] = {"retries": (100, "100"), "idle_poll": (0.01, "10ms")}


def _within(convert: Converter, low: int | None, high: tuple[float, str] | None) -> Converter:
    """`convert`, then no less than `low` and no more than `high` (the bound, and how it is shown), where given."""
    def checked(value: object) -> float:
        number = convert(value)
        if low is not None and number < low:
            raise ValueError(f"must be at least {low}")
        if high is not None and number > high[0]:
            raise ValueError(f"must be at most {high[1]}")
        return number
    return checked


def _converters(cls: type, keys: frozenset[str]) -> dict[str, Converter]:
    """A converter for each unit field of `cls` in `keys`, from its declared type.

    Fields of other types (a URL, a nested block) are left to their own check.
    """
    out: dict[str, Converter] = {}
    for key, kind in field_types(cls, keys).items():
        if kind is float:
            convert: Converter = read_positive_duration if key in _ABOVE_ZERO else read_duration
        elif kind is int:
            convert = read_size if key in _BYTE_SIZES else read_count
        else:
            continue
        low, high = 1 if key in _AT_LEAST_ONE else None, _AT_MOST.get(key)
        out[key] = convert if low is None and high is None else _within(convert, low, high)
    return out


_SERVER_KEYS = yaml_keys(ServerSettings)
_SERVER_UNITS = _converters(ServerSettings, _SERVER_KEYS)
# `name` is the upstream's key under `upstreams`; `url` and `targets` are checked together, `tls` with them.
_UPSTREAM_KEYS = yaml_keys(UpstreamSettings, {"name": None})
# The resilience keys that are no plain unit (`retry_budget` is a float, but a percentage) have their own check.
_UPSTREAM_UNITS = _converters(UpstreamSettings, _UPSTREAM_KEYS - RESILIENCE_KEYS)
# A route's `errors` field is no key of its own: its policy keys sit in the route, as in `defaults`.
_ROUTE_KEYS = yaml_keys(Route, {"errors": None}) | POLICY_KEYS
# The route fields `defaults` may set too, besides the policy.
_ROUTE_POLICY_KEYS = yaml_keys(Route, only={"host_header", "max_body_size", "concurrency", "cors", "maintenance"}) | POLICY_KEYS
_MATCH_KEYS = yaml_keys(Match, {"hosts": "host"})  # `host: a.com` or `host: [a.com, b.com]`


def check_server(check: Checker, value: Any) -> ServerSettings:
    return ServerSettings(**check.units("server", value, _SERVER_UNITS))


def check_upstream(check: Checker, path: str, name: str, spec: Any) -> UpstreamSettings | None:
    if not _NAME.fullmatch(name):
        check.fail(path, name, "is not a valid upstream name (letters, digits, _ . -)")
    if isinstance(spec, str):
        spec = {"url": spec}
    spec = check.mapping(path, spec, _UPSTREAM_KEYS, required=True)
    targets: list[URL | None] = []
    if "url" in spec and "targets" in spec:
        check.fail(f"{path}.targets", spec["targets"], "cannot be given with url: list every address in targets")
    elif "url" in spec:
        targets = [check_target(check, f"{path}.url", spec["url"])]
    elif isinstance(spec.get("targets"), list) and spec["targets"]:
        targets = [check_target(check, f"{path}.targets[{i}]", item) for i, item in enumerate(spec["targets"])]
    elif "targets" in spec:
        check.fail(f"{path}.targets", spec["targets"], "must be a non-empty list of upstream URLs")
    elif spec:  # an empty spec is reported already
        check.missing(f"{path}.url", "an upstream needs a url (http://HOST:PORT) or targets")
    options = check.units(path, {k: v for k, v in spec.items() if k in _UPSTREAM_UNITS}, _UPSTREAM_UNITS)
    options.update(check_resilience(check, path, spec, options))
    valid = tuple(url for url in targets if url is not None)
    tls = check_upstream_tls(check, path, spec.get("tls"), list(valid))
    if not targets or None in targets or (tls is None and any(url.scheme == "https" for url in valid)):
        return None
    return UpstreamSettings(name=name, url=valid[0], targets=valid, tls=tls, **options)


def _defined(names: Iterable[str]) -> str:
    """The upstream names a route may use, for a problem line: ten at most, each cut at 40 characters.

    >>> _defined(["b", "a", "bad\\nname", "x" * 50]), _defined([])
    ('a, b, xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…', 'none')
    """
    valid = sorted(name for name in names if _NAME.fullmatch(name))
    shown = ", ".join(name if len(name) <= 40 else name[:39] + "…" for name in valid[:10])
    return (shown + (f", and {len(valid) - 10} more" if len(valid) > 10 else "")) or "none"


def check_route(check: Checker, path: str, index: int, spec: Any, default_limits: tuple[str, int | None],
                upstreams: dict[str, UpstreamSettings | None], default_policy: ErrorPolicy,
                default_concurrency: Concurrency | None = None, default_cors: Cors | None = None,
                default_maintenance: Maintenance = Maintenance()) -> Route | None:
    given, spec = spec, check.mapping(path, spec, _ROUTE_KEYS, required=True)
    if not isinstance(given, dict) or not given:
        return None  # reported; checking its missing keys would only repeat it
    name = spec.get("name", f"route{index}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        check.fail(f"{path}.name", name, "is not a valid route name (letters, digits, _ . -)")
    match = _match(check, f"{path}.match", spec.get("match"))
    upstream_name = spec.get("upstream")
    upstream = upstreams.get(upstream_name) if isinstance(upstream_name, str) else None
    if not isinstance(upstream_name, str) or upstream_name not in upstreams:
        check.fail(f"{path}.upstream", upstream_name, f"is not a defined upstream (defined: {_defined(upstreams)})")
    strip = spec.get("strip_prefix")
    if strip is not None and (not isinstance(strip, str) or not strip.startswith("/")):
        check.fail(f"{path}.strip_prefix", strip, "must be a path starting with /")
    host_header, max_body = check_limits(check, path, spec, default_limits)
    template = check_template_name(check, f"{path}.template", spec["template"]) if "template" in spec else None
    # Only the route's own keys are checked here: a bad default is reported once.
    errors = check_policy(check, path, {k: v for k, v in spec.items() if k in POLICY_KEYS}, default_policy)
    concurrency = default_concurrency
    if "concurrency" in spec:  # applied key by key over the defaults' block
        concurrency = check_concurrency(check, f"{path}.concurrency", spec["concurrency"], default_concurrency)
    cors = check_cors(check, f"{path}.cors", spec["cors"], default_cors) if "cors" in spec else default_cors
    maintenance = check_maintenance(check, f"{path}.maintenance", spec.get("maintenance"), default_maintenance)
    if upstream is None or match is None or not isinstance(name, str):
        return None
    return Route(name=name, match=match, upstream=upstream, strip_prefix=strip,
                 host_header=host_header, max_body_size=max_body, errors=errors, template=template,
                 concurrency=concurrency, cors=cors, maintenance=maintenance)


def check_limits(check: Checker, path: str, spec: dict[str, Any], base: tuple[str, int | None]) -> tuple[str, int | None]:
    """`host_header` and `max_body_size` as `spec` sets them, else as in `base`."""
    host_header, max_body = base
    if "host_header" in spec:
        host_header = check.choice(f"{path}.host_header", spec["host_header"], ("upstream", "client")) or host_header
    if "max_body_size" in spec:
        value = spec["max_body_size"]
        try:
            max_body = None if value is None else read_size(value)
        except ValueError as exc:
            check.fail(f"{path}.max_body_size", value, f"{exc} (or null for no limit)")
    return host_header, max_body


def _match(check: Checker, path: str, value: Any) -> Match | None:
    spec = check.mapping(path, value, _MATCH_KEYS, required=True)
    hosts_value = spec.get("host", [])
    hosts = hosts_value if isinstance(hosts_value, list) else [hosts_value]
    for host in hosts:
        if not isinstance(host, str) or not HOST.fullmatch(host.lower()):
            check.fail(f"{path}.host", host, "is not a host name (example.com or *.example.com)")
    prefix = spec.get("path_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
        check.fail(f"{path}.path_prefix", prefix, "must be a path starting with /")
    regex = check.regex(f"{path}.path_regex", spec["path_regex"]) if "path_regex" in spec else None
    methods = spec.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not methods:
            check.fail(f"{path}.methods", methods, "must be a non-empty list of methods")
            methods = None
        else:
            for method in methods:
                if not isinstance(method, str) or not TOKEN.fullmatch(method):
                    check.fail(f"{path}.methods", method, "is not an HTTP method")
            methods = frozenset(m.upper() for m in methods if isinstance(m, str))
    if not spec:
        return None
    return Match(hosts=tuple(h.lower() for h in hosts if isinstance(h, str)), path_prefix=prefix,
                 path_regex=regex, methods=methods)

