"""What `errorproxy check` prints of a valid config: one screen of listener, upstreams and routes."""

from __future__ import annotations

from ..core.settings import Settings


def describe(settings: Settings) -> str:
    """A one-screen description of a valid config."""
    lines = [f"{settings.source}: ok", f"listen {settings.listen}"]
    if settings.tls is not None:
        tls = settings.tls
        lines.append(f"  tls: cert {tls.cert}, key {tls.key}"
                     + (f", client certificates from {tls.client_ca}" if tls.client_ca else "")
                     + (f"; {tls.redirect_from} redirects to https" if tls.redirect_from else ""))
    lines.append("upstreams:")
    for upstream in settings.upstreams.values():
        lines.append(
            f"  {upstream.name:<12} {upstream.url}  connect {upstream.connect_timeout:g}s, "
            f"read {upstream.read_timeout:g}s, max {upstream.max_connections} connections"
        )
    lines.append("routes (first match wins):")
    for number, route in enumerate(settings.routes, 1):
        rule = route.match
        conditions = []
        if rule.hosts:
            conditions.append("host=" + ",".join(rule.hosts))
        if rule.path_prefix is not None:
            conditions.append(f"path_prefix={rule.path_prefix}")
        if rule.path_regex is not None:
            conditions.append(f"path_regex={rule.path_regex.pattern}")
        conditions.append("methods=" + (",".join(sorted(rule.methods)) if rule.methods else "any"))
        limit = "none" if route.max_body_size is None else f"{route.max_body_size} bytes"
        extras = [f"Host: {route.host_header}", f"max body {limit}"]
        if route.strip_prefix:
            extras.insert(0, f"strip {route.strip_prefix}")
        lines.append(f"  {number}. {route.name:<12} {' '.join(conditions)} -> {route.upstream.name} ({', '.join(extras)})")
    return "\n".join(lines)
