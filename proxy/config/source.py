"""Where the settings come from: the command line's flags and the environment at startup.

Startup, `errorproxy check` and every reload read through the same `Source`,
so a file `check` accepts is one a reload accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..core.settings import Settings
from .loader import ConfigError, load_from_env


@dataclass(frozen=True)
class Source:
    """The flags and environment errorproxy started with; `read` turns them into settings."""

    env: Mapping[str, str] = field(default_factory=dict)
    config: str | None = None
    upstream: str | None = None
    listen: str | None = None

    def read(self) -> tuple[Settings, list[str]]:
        """Valid settings whose TLS material is usable, and the warnings worth telling
        (a certificate that expires soon, `verify: false`); ConfigError lists every problem otherwise."""
        settings = load_from_env(self.env, config=self.config, upstream=self.upstream, listen=self.listen)
        if settings.tls is None and all(upstream.tls is None for upstream in settings.upstreams.values()):
            return settings, []  # no TLS files to look at (and `cryptography` not imported for nothing)
        from .material import inspect as inspect_tls

        tls = inspect_tls(settings)
        if tls.problems:
            raise ConfigError(settings.source, tls.problems)
        return settings, tls.warnings
