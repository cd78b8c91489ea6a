"""Load YAML configuration into `Settings`, reporting every problem at once.

Each problem names the path of the bad key and quotes its value:

    upstreams.legacy.read_timeout: "3 parsecs" is not a duration
    routes[1].upstream: "legasy" is not a defined upstream (defined: legacy)
"""

from __future__ import annotations

import os
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from .brand import check_brand, check_templates_dir
from .concurrency import check_concurrency
from .gateway import check_cors, check_maintenance
from .check import (  # noqa: F401  (the key sets are part of this module's face)
    _MATCH_KEYS, _ROUTE_KEYS, _ROUTE_POLICY_KEYS, _SERVER_KEYS, _UPSTREAM_KEYS,
    check_limits, check_route, check_server, check_upstream,
)
from .keys import yaml_keys
from .messages import check_messages
from .ops import OPS_KEYS, check_ops
from .parse import YAMLProblem, parse_yaml
from .policy import check_policy
from .problems import Checker
from .transport import check_listen, check_listen_mode, check_listener_tls
from .values import key_path
from .variables import expand
from ..core.settings import DEFAULT_MAX_BODY, Settings

EMBEDDED = "<embedded>"
# Settings fields that are no top-level key: `source` is where the settings came from, the
# `ops` fields are top-level keys of their own (OPS_KEYS), the `errors` policy is written `defaults`,
# and `cors` is the one in `defaults` (for requests no route matches).
_TOP_KEYS = yaml_keys(Settings, {"source": None, "ops": None, "errors": "defaults", "cors": None}) | OPS_KEYS
MAX_FILE = 4 * 1024 * 1024  # a config file is kilobytes; past this it is some other file, given by mistake
MAX_PROBLEMS = 100  # problems listed; a file with more is not worth reading line by line


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def load(path: str | None = None, *, upstream: str | None = None, listen: str | None = None,
         admin: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a file, or from the embedded config when `path` is None.

    `upstream` is the embedded config's one upstream (required without a file);
    `listen` and `admin` override the file's. `${VAR}` in values are expanded
    from `env` (default: this process's environment), see `variables`.
    """
    if path is None:
        if upstream is None:
            raise ConfigError(EMBEDDED, ["no upstream: pass --upstream URL or set ERRORPROXY_UPSTREAM"])
        data = _parse_yaml(resources.files("proxy.config").joinpath("embedded.yaml").read_text(), EMBEDDED, env)
        data["upstreams"]["default"]["url"] = upstream
        source = EMBEDDED
    else:
        if upstream is not None:
            raise ConfigError(path, ["--upstream only applies to the embedded config; set upstreams in the file"])
        try:
            with open(path, "rb") as file:
                raw = file.read(MAX_FILE + 1)
        except OSError as exc:
            raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from exc
        if len(raw) > MAX_FILE:
            raise ConfigError(path, ["cannot read the file: larger than 4MiB, so not a config file"])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(path, [f"cannot read the file: not UTF-8 text (byte {exc.start})"]) from exc
        data = _parse_yaml(text, path, env)
        source = path
    if isinstance(data, dict):
        for key, value in (("listen", listen), ("admin", admin)):
            if value is not None:
                data[key] = value
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
    return load(path, upstream=upstream, listen=listen or env.get("ERRORPROXY_LISTEN") or None,
                admin=env.get("ERRORPROXY_ADMIN") or None, env=env)


def from_text(text: str, source: str = "<string>", env: Mapping[str, str] | None = None) -> Settings:
    return from_mapping(_parse_yaml(text, source, env), source)


def _parse_yaml(text: str, source: str, env: Mapping[str, str] | None = None) -> Any:
    """The document in `text` with its `${VAR}` expanded; ConfigError with every problem otherwise."""
    try:
        data = parse_yaml(text)
    except YAMLProblem as exc:
        raise ConfigError(source, [str(exc)]) from None
    data, problems = expand(data, os.environ if env is None else env)
    if problems:
        raise ConfigError(source, problems[:MAX_PROBLEMS])
    return data


def from_mapping(data: Any, source: str) -> Settings:
    """Validate a parsed YAML document; raise ConfigError with every problem."""
    check = Checker()
    top = check.mapping("", data, _TOP_KEYS)
    listen = check_listen(check, "listen", top.get("listen", "0.0.0.0:8080"))
    tls = check_listener_tls(check, top["tls"], listen) if "tls" in top else None
    listen_mode = check_listen_mode(check, top["listen_mode"], listen) if "listen_mode" in top else None
    ops = check_ops(check, top)
    server = check_server(check, top.get("server", {}))
    trusted = check.networks("trusted_proxies", top.get("trusted_proxies", []))
    underscores = check.flag("allow_underscores_in_headers", top.get("allow_underscores_in_headers", False)) or False
    brand = check_brand(check, "brand", top.get("brand", {}))
    messages = check_messages(check, "messages", top.get("messages", {}))
    templates_dir = check_templates_dir(check, "templates_dir", top["templates_dir"]) if "templates_dir" in top else None
    upstreams = {
        name: check_upstream(check, key_path("upstreams", name), name, spec)
        for name, spec in check.mapping("upstreams", top.get("upstreams"), None, required=True).items()
    }
    defaults = check.mapping("defaults", top.get("defaults", {}), _ROUTE_POLICY_KEYS)
    default_policy = check_policy(check, "defaults", defaults)
    default_limits = check_limits(check, "defaults", defaults, ("upstream", DEFAULT_MAX_BODY))
    default_concurrency = check_concurrency(check, "defaults.concurrency", defaults.get("concurrency"), None)
    default_cors = check_cors(check, "defaults.cors", defaults.get("cors"), None)
    default_maintenance = check_maintenance(check, "defaults.maintenance", defaults.get("maintenance"), None)
    routes_data = top.get("routes")
    if not isinstance(routes_data, list) or not routes_data:
        check.fail("routes", routes_data, "must be a non-empty list of routes")
        routes_data = []
    routes = []
    names: set[str] = set()
    for index, spec in enumerate(routes_data):
        route = check_route(check, f"routes[{index}]", index, spec, default_limits, upstreams, default_policy,
                            default_concurrency, default_cors, default_maintenance)
        # Checked on invalid routes too, so fixing one problem does not reveal another.
        name = route.name if route is not None else spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            if name in names:
                check.fail(f"routes[{index}].name", name, "is used by an earlier route")
            names.add(name)
        if route is not None:
            routes.append(route)
    if check.problems:
        problems = check.problems[:MAX_PROBLEMS]
        if len(check.problems) > MAX_PROBLEMS:
            problems.append(f"... and {len(check.problems) - MAX_PROBLEMS} more problems")
        raise ConfigError(source, problems)
    return Settings(
        listen=listen,
        upstreams=MappingProxyType({k: v for k, v in upstreams.items() if v is not None}),
        routes=tuple(routes),
        server=server,
        trusted_proxies=trusted,
        allow_underscores_in_headers=underscores,
        source=source,
        brand=MappingProxyType(brand),
        messages=MappingProxyType({language: MappingProxyType(texts) for language, texts in messages.items()}),
        templates_dir=templates_dir,
        errors=default_policy,
        cors=default_cors,
        ops=ops,
        tls=tls,
        listen_mode=listen_mode,
    )
