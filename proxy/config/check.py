"""The problem collector behind `loader`: converts YAML values into settings pieces.

Each method returns a usable value (or None) and records a `path: value message`
line for everything wrong, so one pass reports every problem in a file.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Callable

from yarl import URL

from .brand import check_template_name
from .policy import POLICY_KEYS, check_policy
from ..core.settings import Address, ErrorPolicy, Match, Route, UpstreamSettings
from ..core.units import parse_duration, parse_size

_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_SERVER_KEYS = {
    "header_timeout": parse_duration,
    "keepalive_timeout": parse_duration,
    "max_line_size": parse_size,
    "max_headers": parse_size,
    "lingering_time": parse_duration,
    "shutdown_timeout": parse_duration,
    "stop_delay": parse_duration,
}
_UPSTREAM_KEYS = {
    "connect_timeout": parse_duration,
    "read_timeout": parse_duration,
    "max_connections": parse_size,
    "idle_timeout": parse_duration,
    "max_line_size": parse_size,
    "eject_for": parse_duration,
    "retries": parse_size,
    "retry_backoff": parse_duration,
}
_ROUTE_POLICY_KEYS = {"host_header", "max_body_size"} | POLICY_KEYS  # inherited from `defaults`
_ROUTE_KEYS = {"name", "match", "upstream", "strip_prefix", "template"} | _ROUTE_POLICY_KEYS
_MATCH_KEYS = {"host", "path_prefix", "path_regex", "methods"}
_UNIT_NAMES = {parse_duration: "a duration", parse_size: "a size"}
_AT_LEAST_ONE = {"max_connections", "max_line_size", "max_headers"}  # 0 would refuse everything


def show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class Checker:
    """Collects problems as it converts; each method returns a usable fallback."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, value: Any, message: str) -> None:
        self.problems.append(f"{path}: {show(value)} {message}")

    def mapping(self, path: str, value: Any, allowed: set[str] | None, *, required: bool = False) -> dict[str, Any]:
        where = path or "(top level)"
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or (required and not value):
            self.problems.append(f"{where}: {show(value)} " + ("must be a non-empty mapping" if required else "must be a mapping"))
            return {}
        for key in value:
            if not isinstance(key, str) or (allowed is not None and key not in allowed):
                known = f" (known keys: {', '.join(sorted(allowed))})" if allowed else ""
                self.problems.append(f"{path + '.' if path else ''}{key}: unknown key{known}")
        return {k: v for k, v in value.items() if isinstance(k, str) and (allowed is None or k in allowed)}

    def address(self, path: str, value: Any) -> Address:
        text = str(value) if isinstance(value, (str, int)) else ""
        host, sep, port = text.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        if sep and port.isascii() and port.isdigit() and int(port) < 65536 and _is_host(host):
            return Address(host, int(port))
        self.fail(path, value, "is not an address (HOST:PORT, e.g. 0.0.0.0:8080)")
        return Address("0.0.0.0", 8080)

    def units(self, path: str, value: Any, keys: dict[str, Callable[[object], Any]]) -> dict[str, Any]:
        out = {}
        for key, raw in self.mapping(path, value, set(keys)).items():
            try:
                out[key] = keys[key](raw)
            except ValueError:
                self.fail(f"{path}.{key}", raw, f"is not {_UNIT_NAMES[keys[key]]}")
            else:
                if out[key] == 0 and key in _AT_LEAST_ONE:
                    self.fail(f"{path}.{key}", raw, "must be at least 1")
        return out

    def networks(self, path: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            self.fail(path, value, "must be a list of addresses or CIDR ranges")
            return ()
        out = []
        for index, item in enumerate(value):
            try:
                out.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                self.fail(f"{path}[{index}]", item, "is not an IP address or CIDR range")
        return tuple(out)

    def strings(self, path: str, value: Any) -> dict[str, str]:
        out = {}
        for key, item in self.mapping(path, value, None).items():
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                out[key] = str(item)
            else:
                self.fail(f"{path}.{key}", item, "must be a string")
        return out

    def upstream(self, path: str, name: str, spec: Any) -> UpstreamSettings | None:
        if not _NAME.fullmatch(name):
            self.fail(path, name, "is not a valid upstream name (letters, digits, _ . -)")
        if isinstance(spec, str):
            spec = {"url": spec}
        spec = self.mapping(path, spec, {"url", "targets"} | set(_UPSTREAM_KEYS), required=True)
        targets: list[URL | None] = []
        if "url" in spec and "targets" in spec:
            self.fail(f"{path}.targets", spec["targets"], "cannot be given with url: list every address in targets")
        elif "url" in spec:
            targets = [self.url(f"{path}.url", spec["url"])]
        elif isinstance(spec.get("targets"), list) and spec["targets"]:
            targets = [self.url(f"{path}.targets[{i}]", item) for i, item in enumerate(spec["targets"])]
        elif "targets" in spec:
            self.fail(f"{path}.targets", spec["targets"], "must be a non-empty list of upstream URLs")
        elif spec:  # an empty spec is reported already
            self.problems.append(f"{path}.url: missing: an upstream needs a url (http://HOST:PORT) or targets")
        options = self.units(path, {k: v for k, v in spec.items() if k not in ("url", "targets")}, _UPSTREAM_KEYS)
        if not targets or None in targets:
            return None
        valid = tuple(url for url in targets if url is not None)
        return UpstreamSettings(name=name, url=valid[0], targets=valid, **options)

    def url(self, path: str, value: Any) -> URL | None:
        try:
            url = URL(value) if isinstance(value, str) else None
        except ValueError:
            url = None
        if url is None or url.scheme != "http" or not url.host or url.query_string or url.fragment:
            self.fail(path, value, "is not an upstream URL (http://HOST[:PORT][/base/path])")
            return None
        if "@" in url.raw_authority:
            # They would travel in the Host header; credentials belong in headers the upstream checks.
            self.fail(path, value, "must not hold credentials (user:password@)")
            return None
        return url

    def route(self, path: str, index: int, spec: Any, default_limits: tuple[str, int | None],
              upstreams: dict[str, UpstreamSettings | None], default_policy: ErrorPolicy) -> Route | None:
        given, spec = spec, self.mapping(path, spec, _ROUTE_KEYS, required=True)
        if not isinstance(given, dict) or not given:
            return None  # reported; checking its missing keys would only repeat it
        name = spec.get("name", f"route{index}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.fail(f"{path}.name", name, "is not a valid route name (letters, digits, _ . -)")
        match = self.match(f"{path}.match", spec.get("match"))
        upstream_name = spec.get("upstream")
        upstream = upstreams.get(upstream_name) if isinstance(upstream_name, str) else None
        if not isinstance(upstream_name, str) or upstream_name not in upstreams:
            defined = ", ".join(sorted(upstreams)) or "none"
            self.fail(f"{path}.upstream", upstream_name, f"is not a defined upstream (defined: {defined})")
        strip = spec.get("strip_prefix")
        if strip is not None and (not isinstance(strip, str) or not strip.startswith("/")):
            self.fail(f"{path}.strip_prefix", strip, "must be a path starting with /")
        host_header, max_body = self.limits(path, spec, default_limits)
        template = check_template_name(self, f"{path}.template", spec["template"]) if "template" in spec else None
        # Only the route's own keys are checked here: a bad default is reported once.
        errors = check_policy(self, path, {k: v for k, v in spec.items() if k in POLICY_KEYS}, default_policy)
        if upstream is None or match is None or not isinstance(name, str):
            return None
        return Route(name=name, match=match, upstream=upstream, strip_prefix=strip,
                     host_header=host_header, max_body_size=max_body, errors=errors, template=template)

    def limits(self, path: str, spec: dict[str, Any], base: tuple[str, int | None]) -> tuple[str, int | None]:
        """`host_header` and `max_body_size` as `spec` sets them, else as in `base`."""
        host_header, max_body = base
        if "host_header" in spec:
            if spec["host_header"] in ("upstream", "client"):
                host_header = spec["host_header"]
            else:
                self.fail(f"{path}.host_header", spec["host_header"], "must be upstream or client")
        if "max_body_size" in spec:
            try:
                max_body = None if spec["max_body_size"] is None else parse_size(spec["max_body_size"])
            except ValueError:
                self.fail(f"{path}.max_body_size", spec["max_body_size"], "is not a size (or null for no limit)")
        return host_header, max_body

    def regex(self, path: str, value: Any) -> re.Pattern[str] | None:
        if not isinstance(value, str):
            self.fail(path, value, "must be a string")
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            self.fail(path, value, f"is not a regular expression ({exc})")
            return None

    def match(self, path: str, value: Any) -> Match | None:
        spec = self.mapping(path, value, _MATCH_KEYS, required=True)
        hosts_value = spec.get("host", [])
        hosts = hosts_value if isinstance(hosts_value, list) else [hosts_value]
        for host in hosts:
            if not isinstance(host, str) or not _HOST.fullmatch(host.lower()):
                self.fail(f"{path}.host", host, "is not a host name (example.com or *.example.com)")
        prefix = spec.get("path_prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
            self.fail(f"{path}.path_prefix", prefix, "must be a path starting with /")
        regex = self.regex(f"{path}.path_regex", spec["path_regex"]) if "path_regex" in spec else None
        methods = spec.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not methods:
                self.fail(f"{path}.methods", methods, "must be a non-empty list of methods")
                methods = None
            else:
                for method in methods:
                    if not isinstance(method, str) or not _METHOD.fullmatch(method):
                        self.fail(f"{path}.methods", method, "is not an HTTP method")
                methods = frozenset(str(m).upper() for m in methods)
        if not spec:
            return None
        return Match(hosts=tuple(h.lower() for h in hosts if isinstance(h, str)), path_prefix=prefix,
                     path_regex=regex, methods=methods)


def _is_host(host: str) -> bool:
    """An IP address or a host name to listen on (no wildcard)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return not host.startswith("*.") and _HOST.fullmatch(host.lower()) is not None
    return True
