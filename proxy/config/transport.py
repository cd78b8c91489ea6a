"""Validation of how bytes travel: `listen` (TCP or a Unix socket), `listen_mode`, the listener's
`tls`, upstream URLs (`http://`, `https://`, `unix:`) and an upstream's `tls`.

These check the shape of the keys only; whether the files they name hold a
usable certificate is `material`'s question.

>>> check = Checker()
>>> check_listen(check, "listen", "unix:/run/errorproxy.sock")
UnixAddress(path='/run/errorproxy.sock')
>>> check_target(check, "upstreams.app.url", "unix:run/app.sock") is None
True
>>> check.problems
['upstreams.app.url: "unix:run/app.sock" is not an upstream URL (http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])']
"""

from __future__ import annotations

import re
from typing import Any

from yarl import URL

from .keys import yaml_keys
from .problems import HOST, Checker
from ..core.settings import Address, ListenerTLS, UnixAddress, UpstreamTLS

LISTENER_TLS_KEYS = yaml_keys(ListenerTLS)
UPSTREAM_TLS_KEYS = yaml_keys(UpstreamTLS)
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL (Linux; 103 on macOS)
_TARGET_SHAPES = "http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base]"


def check_listen(check: Checker, path: str, value: Any) -> Address | UnixAddress:
    """HOST:PORT, or `unix:/absolute/path`."""
    if isinstance(value, str) and value.startswith("unix:"):
        socket_path = value[len("unix:"):]
        if _socket_path_ok(check, path, value, socket_path):
            return UnixAddress(socket_path)
        return Address("0.0.0.0", 8080)
    return check.address(path, value)


def check_listen_mode(check: Checker, value: Any, listen: Address | UnixAddress) -> int | None:
    """A file mode in octal, "0660"; YAML reads a bare 0660 as the number 432, which is taken as it is."""
    if not isinstance(listen, UnixAddress):
        check.fail("listen_mode", value, "applies to a Unix-socket listen (unix:/PATH) only")
        return None
    if isinstance(value, str):
        text = value.strip().removeprefix("0o")
        if text and len(text) <= 4 and all(c in "01234567" for c in text):
            return int(text, 8)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    check.fail("listen_mode", value, 'is not a file mode: write it quoted, in octal, as "0660"')
    return None


def check_listener_tls(check: Checker, value: Any, listen: Address | UnixAddress) -> ListenerTLS | None:
    spec = check.mapping("tls", value, LISTENER_TLS_KEYS, required=True)
    files = {key: _file(check, f"tls.{key}", spec[key]) for key in ("cert", "key", "client_ca") if key in spec}
    for key in ("cert", "key"):
        if key not in spec and spec:
            check.missing(f"tls.{key}", "a TLS listener needs a certificate (cert) and its key (key), as PEM files")
    redirect_from = check.address("tls.redirect_from", spec["redirect_from"]) if "redirect_from" in spec else None
    redirect_port = None
    if "redirect_port" in spec:
        port = spec["redirect_port"]
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            redirect_port = port
        else:
            check.fail("tls.redirect_port", port, "is not a port (1 to 65535)")
    if redirect_from is not None and redirect_port is None and isinstance(listen, UnixAddress):
        check.missing("tls.redirect_port", "a redirect to a Unix-socket listener needs the https port clients use")
    cert, key = files.get("cert"), files.get("key")
    if cert is None or key is None:
        return None
    return ListenerTLS(cert=cert, key=key, client_ca=files.get("client_ca"), redirect_from=redirect_from,
                       redirect_port=redirect_port)


# A host to dial: a DNS name (as RFC 1123 spells it, with the _ some internal names hold), an IPv4
# address, or an IPv6 one (yarl gives it without its brackets).
_DIAL_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*")


def check_target(check: Checker, path: str, value: Any) -> URL | None:
    """An upstream URL: http(s)://HOST[:PORT][/base] or unix:/PATH[:/base]."""
    try:
        url = URL(value) if isinstance(value, str) else None
    except ValueError:
        url = None
    if url is not None and url.scheme == "unix" and not url.raw_host and not url.query_string and not url.fragment:
        socket_path, _, base = url.raw_path.partition(":")
        if socket_path.startswith("/") and (not base or base.startswith("/")):
            return url if _socket_path_ok(check, path, value, socket_path) else None
    elif url is not None and url.scheme in ("http", "https") and url.host and not url.query_string and not url.fragment:
        if "@" in url.raw_authority:
            # They would travel in the Host header; credentials belong in headers the upstream checks.
            check.fail(path, value, "must not hold credentials (user:password@)")
            return None
        if not _DIAL_HOST.fullmatch(url.raw_host or ""):
            check.fail(path, value, "has a host that is neither a name (letters, digits, - . _) nor an IP address")
            return None
        return url
    check.fail(path, value, f"is not an upstream URL ({_TARGET_SHAPES})")
    return None


def check_upstream_tls(check: Checker, path: str, value: Any, targets: list[URL]) -> UpstreamTLS | None:
    """The `tls` of an upstream whose valid `targets` are given: defaults for https, None otherwise."""
    schemes = {url.scheme for url in targets}
    if len(schemes) > 1:
        check.fail(f"{path}.targets", sorted(schemes), "mixes schemes: every target of an upstream is http, https or unix alike")
    if "https" not in schemes:
        if value is not None:
            check.fail(f"{path}.tls", value, "applies to https:// upstreams only")
        return None
    spec = check.mapping(f"{path}.tls", value, UPSTREAM_TLS_KEYS)
    where = f"{path}.tls"
    options: dict[str, Any] = {key: _file(check, f"{where}.{key}", spec[key])
                               for key in ("ca_file", "client_cert", "client_key") if key in spec}
    if "verify" in spec:
        if isinstance(spec["verify"], bool):
            options["verify"] = spec["verify"]
        else:
            check.fail(f"{where}.verify", spec["verify"], "must be true or false")
    if "server_name" in spec:
        name = spec["server_name"]
        if isinstance(name, str) and HOST.fullmatch(name.lower()) and not name.startswith("*"):
            options["server_name"] = name.lower()
        else:
            check.fail(f"{where}.server_name", name, "is not a host name (api.example.com)")
    if "min_version" in spec:
        version = spec["min_version"]
        text = f"{version:.1f}" if isinstance(version, float) else version  # `min_version: 1.2` is a YAML float
        if text in ("1.2", "1.3"):
            options["min_version"] = text
        else:
            check.fail(f"{where}.min_version", version, 'must be "1.2" or "1.3"')
    if "client_key" in spec and "client_cert" not in spec:
        check.missing(f"{where}.client_cert", "client_key is the key of a client_cert")
    if options.get("verify") is False and "ca_file" in spec:
        check.fail(f"{where}.ca_file", spec["ca_file"], "is not used with verify: false: remove one of them")
    if any(value is None for value in options.values()):
        return None
    return UpstreamTLS(**options)


def _file(check: Checker, path: str, value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    check.fail(path, value, "must be a file path")
    return None


def _socket_path_ok(check: Checker, path: str, value: Any, socket_path: str) -> bool:
    if not socket_path.startswith("/"):
        check.fail(path, value, "must name an absolute socket path (unix:/run/app.sock)")
        return False
    if len(socket_path.encode()) > _MAX_SOCKET_PATH:
        check.fail(path, value, f"names a socket path longer than the {_MAX_SOCKET_PATH} bytes the system allows")
        return False
    return True
