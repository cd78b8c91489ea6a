"""Maintenance mode at request time: the run-time switches, the maintenance files, and the check.

The decision is `core.maintenance`'s; this module finds what it decides on,
without a system call per request:

- Switches thrown on the admin listener (`POST /maintenance`) live in a
  `Switches` object that outlives a config reload. With a state directory
  (`ERRORPROXY_STATE_DIR`, which the `--workers` supervisor sets for its
  workers), each switch is also a small JSON file there: the worker whose
  admin listener took the POST writes it, and every worker reads the
  directory at most once a second, so all of them agree within a second.
- A route's `maintenance.file` is looked at (one stat) at most once a second.

    state directory/global.maintenance.json          {"retry_after": 600, "message": null, "since": 1764...}
    state directory/route.api.maintenance.json       the same, for the route named api
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict
from typing import Any, Callable, Mapping

from aiohttp import web

from ..core import errors
from ..core.maintenance import GLOBAL, STATE_DIR, Switch, Window, client_address, passes, window
from ..core.settings import IPNetwork, Route, Settings

log = logging.getLogger("errorproxy")

INTERVAL = 1.0  # seconds: the state directory and maintenance files are looked at this often, at most
_SUFFIX = ".maintenance.json"
_MAX_STATE = 16 * 1024  # bytes of one switch file read; a switch is a hundred


def _file_name(scope: str) -> str:
    """`global.maintenance.json`, or `route.NAME.maintenance.json` (route names are file-name safe)."""
    return "global" + _SUFFIX if scope == GLOBAL else f"route.{scope}{_SUFFIX}"


def _scope(file_name: str) -> str | None:
    if not file_name.endswith(_SUFFIX):
        return None
    stem = file_name[:-len(_SUFFIX)]
    if stem == "global":
        return GLOBAL
    return stem[len("route."):] if stem.startswith("route.") and len(stem) > len("route.") else None


class Switches:
    """Maintenance switched on at run time, by scope (`core.maintenance.GLOBAL` or a route name).

    Without a `directory` the switches are this process's alone; with one,
    they are files there, shared with every process reading it.
    `clock` is injectable for tests.
    """

    def __init__(self, directory: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self._clock = clock
        self._switches: dict[str, Switch] = {}
        self._read_at = -math.inf
        self._seen: dict[str, tuple[int, int]] = {}  # file name -> (mtime_ns, size) when last read
        self._files: dict[str, tuple[float, bool]] = {}  # maintenance file -> (looked at, exists)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Switches:
        return cls(env.get(STATE_DIR) or None)

    def current(self) -> Mapping[str, Switch]:
        """The switches on now (as of the last look at the directory, at most INTERVAL ago)."""
        if self.directory is not None and self._clock() - self._read_at >= INTERVAL:
            self._read()
        return self._switches

    def switch_on(self, scope: str, retry_after: int | None = None, message: str | None = None) -> Switch:
        switch = Switch(retry_after=retry_after, message=message, since=time.time())
        if self.directory is not None:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            # Written whole, then renamed: a reader sees the old file or the new one, never half of one.
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".switch-")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump(asdict(switch), file)
                os.replace(temporary, os.path.join(self.directory, _file_name(scope)))
            except BaseException:
                os.unlink(temporary)
                raise
        self._switches = {**self._switches, scope: switch}
        return switch

    def switch_off(self, scope: str) -> bool:
        """Whether the switch was on."""
        was_on = scope in self.current()
        if self.directory is not None:
            try:
                os.unlink(os.path.join(self.directory, _file_name(scope)))
                was_on = True
            except FileNotFoundError:
                pass
        self._switches = {key: switch for key, switch in self._switches.items() if key != scope}
        return was_on

    def present(self, path: str) -> bool:
        """Whether the file at `path` exists, as of a look at most INTERVAL ago."""
        now = self._clock()
        seen = self._files.get(path)
        if seen is None or now - seen[0] >= INTERVAL:
            seen = (now, os.path.exists(path))
            self._files[path] = seen
        return seen[1]

    def _read(self) -> None:
        """The switches in the directory; on a failure to read it, the last ones known stay."""
        assert self.directory is not None
        self._read_at = self._clock()
        try:
            with os.scandir(self.directory) as listing:
                names = [entry.name for entry in listing if _scope(entry.name) is not None]
        except FileNotFoundError:
            names = []  # nothing switched on yet
        except OSError as exc:
            log.warning("cannot read the maintenance switches in %s (%s); the last ones known stay",
                        self.directory, exc.strerror or exc)
            return
        switches = {}
        for name in names:
            scope = _scope(name)
            assert scope is not None
            path = os.path.join(self.directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # switched off since the listing
            known = self._switches.get(scope)
            if known is not None and self._seen.get(name) == (stat.st_mtime_ns, stat.st_size):
                switches[scope] = known
                continue
            switch = _load(path)
            if switch is not None:
                switches[scope] = switch
                self._seen[name] = (stat.st_mtime_ns, stat.st_size)
        self._switches = switches


def _load(path: str) -> Switch | None:
    """A switch file; one that cannot be read as one is a switch with the route's own values."""
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read(_MAX_STATE))
    except FileNotFoundError:
        return None  # switched off between the listing and now
    except (OSError, ValueError):
        return Switch()  # there, so on; what it says cannot be read
    if not isinstance(data, dict):
        return Switch()
    retry_after, message, since = data.get("retry_after"), data.get("message"), data.get("since")
    return Switch(
        retry_after=retry_after if isinstance(retry_after, int) and not isinstance(retry_after, bool) else None,
        message=message if isinstance(message, str) else None,
        since=float(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else 0.0,
    )


def route_window(switches: Switches, route: Route) -> Window | None:
    """The maintenance window `route` is in now, or None (nothing read unless something could be on)."""
    settings = route.maintenance
    current = switches.current()
    if not (current or settings.enabled or settings.file is not None):
        return None
    present = settings.file is not None and switches.present(settings.file)
    return window(route.name, settings, current, present)


def check(switches: Switches, route: Route, request: web.BaseRequest, trusted: tuple[IPNetwork, ...]) -> None:
    """Raise `errors.Maintenance` when `route` is in maintenance and the client is not let through."""
    current = route_window(switches, route)
    if current is None:
        return
    client = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)
    if not passes(route.maintenance, client):
        raise errors.Maintenance(current.message, retry_after=current.retry_after)


def status(settings: Settings, switches: Switches) -> dict[str, Any]:
    """What is in maintenance now, for /readyz and GET /maintenance.

    `on` is true when any route is; `routes` names each one with what
    switched it on; `switches` are those thrown on the admin listener.
    """
    routes = {}
    for route in settings.routes:
        current = route_window(switches, route)
        if current is not None:
            routes[route.name] = {"source": current.source, "retry_after": current.retry_after,
                                  "message": current.message}
    thrown = {("global" if scope == GLOBAL else scope): asdict(switch) for scope, switch in switches.current().items()}
    return {"on": bool(routes), "routes": routes, "switches": thrown}
