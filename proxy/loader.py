"""Load YAML configuration into `Settings`, reporting every problem at once.

Each problem names the path of the bad key and quotes its value:

    upstreams.legacy.read_timeout: "3 parsecs" is not a duration
    routes[1].upstream: "legasy" is not a defined upstream (defined: legacy)
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from importlib import resources
from types import MappingProxyType
from typing import Any, Callable, Mapping

import yaml
from yarl import URL

from .loader_brand import check_brand, check_template_name, check_templates_dir
from .loader_policy import POLICY_KEYS, check_policy
from .settings import DEFAULT_MAX_BODY, Address, ErrorPolicy, Match, Route, ServerSettings, Settings, UpstreamSettings
from .units import parse_duration, parse_size

EMBEDDED = "<embedded>"
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_TOP_KEYS = {"listen", "admin", "server", "upstreams", "routes", "defaults", "trusted_proxies", "brand", "templates_dir"}
_SERVER_KEYS = {
    "header_timeout": parse_duration,
    "keepalive_timeout": parse_duration,
    "max_line_size": parse_size,
    "max_headers": parse_size,
    "lingering_time": parse_duration,
    "shutdown_timeout": parse_duration,
}
_UPSTREAM_KEYS = {
    "connect_timeout": parse_duration,
    "read_timeout": parse_duration,
    "max_connections": parse_size,
    "idle_timeout": parse_duration,
    "max_line_size": parse_size,
}
_ROUTE_POLICY_KEYS = {"host_header", "max_body_size"} | POLICY_KEYS  # inherited from `defaults`
_ROUTE_KEYS = {"name", "match", "upstream", "strip_prefix", "template"} | _ROUTE_POLICY_KEYS
_MATCH_KEYS = {"host", "path_prefix", "path_regex", "methods"}
_UNIT_NAMES = {parse_duration: "a duration", parse_size: "a size"}
_AT_LEAST_ONE = {"max_connections", "max_line_size", "max_headers"}  # 0 would refuse everything


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def load(path: str | None = None, *, upstream: str | None = None, listen: str | None = None) -> Settings:
    """Settings from a file, or from the embedded config when `path` is None.

    `upstream` is the embedded config's one upstream (required without a file);
    `listen` overrides the file's `listen`.
    """
    if path is None:
        if upstream is None:
            raise ConfigError(EMBEDDED, ["no upstream: pass --upstream URL or set ERRORPROXY_UPSTREAM"])
        data = _parse_yaml(resources.files("proxy").joinpath("embedded.yaml").read_text(), EMBEDDED)
        data["upstreams"]["default"]["url"] = upstream
        source = EMBEDDED
    else:
        if upstream is not None:
            raise ConfigError(path, ["--upstream only applies to the embedded config; set upstreams in the file"])
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(path, [f"cannot read the file: not UTF-8 text (byte {exc.start})"]) from exc
        data = _parse_yaml(text, path)
        source = path
    if listen is not None and isinstance(data, dict):
        data["listen"] = listen
    return from_mapping(data, source)


def load_from_env(env: Mapping[str, str] = os.environ, *, config: str | None = None,
                  upstream: str | None = None, listen: str | None = None) -> Settings:
    """`load` with command-line flags first, then ERRORPROXY_* variables.

    ERRORPROXY_UPSTREAM applies only when no config file is given. A flag beats
    any variable: `--upstream` selects the embedded config even when
    ERRORPROXY_CONFIG is set (by a container image, say).
    """
    path = config or (None if upstream else env.get("ERRORPROXY_CONFIG")) or None
    if path is None:
        upstream = upstream or env.get("ERRORPROXY_UPSTREAM") or None
    return load(path, upstream=upstream, listen=listen or env.get("ERRORPROXY_LISTEN") or None)


def from_text(text: str, source: str = "<string>") -> Settings:
    return from_mapping(_parse_yaml(text, source), source)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping.

    PyYAML keeps the last one silently, so a second `legacy:` upstream or a
    repeated `routes:` would replace the first without a word.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: PyYAML's own construction reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {_show(key)}", key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "but found another document" needs its first half
            problem = f"{context}, {problem}"
        raise ConfigError(source, [f"{where}not valid YAML ({problem})"]) from exc


def from_mapping(data: Any, source: str) -> Settings:
    """Validate a parsed YAML document; raise ConfigError with every problem."""
    check = _Checker()
    top = check.mapping("", data, _TOP_KEYS)
    listen = check.address("listen", top.get("listen", "0.0.0.0:8080"))
    if "admin" in top:
        check.address("admin", top["admin"])
    server = ServerSettings(**check.units("server", top.get("server", {}), _SERVER_KEYS))
    trusted = check.networks("trusted_proxies", top.get("trusted_proxies", []))
    brand = check_brand(check, "brand", top.get("brand", {}))
    templates_dir = check_templates_dir(check, "templates_dir", top["templates_dir"]) if "templates_dir" in top else None
    upstreams = {
        name: check.upstream(f"upstreams.{name}", name, spec)
        for name, spec in check.mapping("upstreams", top.get("upstreams"), None, required=True).items()
    }
    defaults = check.mapping("defaults", top.get("defaults", {}), _ROUTE_POLICY_KEYS)
    default_policy = check_policy(check, "defaults", defaults)
    default_limits = check.limits("defaults", defaults, ("upstream", DEFAULT_MAX_BODY))
    routes_data = top.get("routes")
    if not isinstance(routes_data, list) or not routes_data:
        check.fail("routes", routes_data, "must be a non-empty list of routes")
        routes_data = []
    routes = []
    names: set[str] = set()
    for index, spec in enumerate(routes_data):
        route = check.route(f"routes[{index}]", index, spec, default_limits, upstreams, default_policy)
        # Checked on invalid routes too, so fixing one problem does not reveal another.
        name = route.name if route is not None else spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            if name in names:
                check.fail(f"routes[{index}].name", name, "is used by an earlier route")
            names.add(name)
        if route is not None:
            routes.append(route)
    if check.problems:
        raise ConfigError(source, check.problems)
    return Settings(
        listen=listen,
        upstreams=MappingProxyType({k: v for k, v in upstreams.items() if v is not None}),
        routes=tuple(routes),
        server=server,
        trusted_proxies=trusted,
        source=source,
        brand=MappingProxyType(brand),
        templates_dir=templates_dir,
        errors=default_policy,
    )


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class _Checker:
    """Collects problems as it converts; each method returns a usable fallback."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, value: Any, message: str) -> None:
        self.problems.append(f"{path}: {_show(value)} {message}")

    def mapping(self, path: str, value: Any, allowed: set[str] | None, *, required: bool = False) -> dict[str, Any]:
        where = path or "(top level)"
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or (required and not value):
            self.problems.append(f"{where}: {_show(value)} " + ("must be a non-empty mapping" if required else "must be a mapping"))
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
        spec = self.mapping(path, spec, {"url"} | set(_UPSTREAM_KEYS), required=True)
        url = self.url(f"{path}.url", spec["url"]) if "url" in spec else None
        if "url" not in spec and spec:  # an empty spec is reported already
            self.problems.append(f"{path}.url: missing: an upstream needs a url (http://HOST:PORT)")
        options = self.units(path, {k: v for k, v in spec.items() if k != "url"}, _UPSTREAM_KEYS)
        return UpstreamSettings(name=name, url=url, **options) if url is not None else None

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
