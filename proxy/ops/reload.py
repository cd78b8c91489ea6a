"""Reloading the configuration without dropping a request.

A request runs to its end on the `Proxy` (settings, routes, upstream pools) it
started with; a reload only changes which `Proxy` the next request gets:

    SIGHUP or a changed file ─▶ load(source) ─▶ valid? ─▶ listener certificate ─▶ Holder.swap(new)
                                                  │          reloaded (tls)         └─▶ old Proxy closed once
                                                  │                                     its last request ends
                                                  └─ invalid: every problem logged, the old Proxy keeps serving

"A changed file" is the config file, or a certificate, key or CA file it
names, so a renewed certificate is picked up without touching the config.

Startup and reload read the configuration the same way (`load`), so a
file that `errorproxy check` accepts is one a reload accepts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import Callable

from ..config.loader import ConfigError
from ..config.source import Source
from ..core.settings import Settings
from ..upstream import coalesce
from .tls import ListenerCertificates

log = logging.getLogger("errorproxy")

WATCH_INTERVAL = 1.0  # seconds between looks at the config file when `watch_config` is on


def load(source: Source) -> tuple[Settings, list[str]]:
    """Valid settings whose templates all render, and the warnings worth telling (a certificate that
    expires soon, `verify: false`); ConfigError lists every problem otherwise."""
    settings, warnings = source.read()
    from ..http.pages import Pages  # jinja2 is needed only once the YAML is valid

    # maintenance.html: any route may be switched into maintenance at run time.
    route_templates = tuple(sorted({route.template for route in settings.routes if route.template}
                                   | {"maintenance.html"}))
    pages = Pages(settings.brand, settings.templates_dir, settings.messages)
    problems = [f"template {problem}" for problem in pages.check(route_templates)]
    if problems:
        raise ConfigError(settings.source, problems)
    return settings, warnings


class Holder:
    """The `Proxy` new requests get, and the requests still running on each one.

    The server's handler is `Holder.handle`. A swapped-out `Proxy` is closed
    (its upstream connections with it, but for those the new one adopted)
    when its last request ends.
    """

    def __init__(self, proxy) -> None:
        self.current = proxy
        self._running: dict[asyncio.Task, object] = {}  # each request's task, and the Proxy it runs on
        self._open = {proxy}  # every Proxy not closed yet: the current one, and old ones still serving
        self._closing: set[asyncio.Task] = set()
        self._idle: asyncio.Future[None] | None = None  # `wait_idle`'s, while it waits
        self.stopping = False  # set by the drain: each response from then on closes its connection
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request):
        proxy = self.current
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # with the loop named: Python 3.11 asks getpid() to find it
        assert task is not None
        running = self._running
        running[task] = proxy
        coalesce.request_started()
        try:
            response = await proxy.handle(request)
            if self.stopping:
                response.force_close()
            return response
        finally:
            coalesce.request_ended()
            del running[task]
            task = None  # the connection's own task: a traceback through this frame must not hold it (a cycle)
            if not running and self._idle is not None and not self._idle.done():
                self._idle.set_result(None)
            if proxy is not self.current and proxy in self._open and proxy not in running.values():
                self._retire(proxy)  # a request cut at a stop may end after its Proxy was closed

    def swap(self, proxy) -> None:
        old, self.current = self.current, proxy
        self._open.add(proxy)
        serving = sum(1 for of in self._running.values() if of is old)
        if not serving:
            self._retire(old)
        else:
            log.info("the previous config serves its %d request(s) in flight to their end", serving)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def wait_idle(self, timeout: float) -> bool:
        """Whether every request ended within `timeout` seconds."""
        if not self._running:
            return True
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def cancel(self) -> int:
        """Cancel every request still running (the proxy is stopping); how many there were."""
        for task in self._running:
            task.cancel()
        return len(self._running)

    async def close(self) -> None:
        """Close every `Proxy`: the current one and any still serving old requests."""
        for proxy in list(self._open):
            self._retire(proxy, quietly=True)
        while self._closing:
            await asyncio.gather(*self._closing)

    def _retire(self, proxy, quietly: bool = False) -> None:
        self._open.discard(proxy)
        if not quietly:
            log.info("closing the previous config's upstream connections: its last request has ended")
        task = asyncio.get_running_loop().create_task(_close(proxy))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(proxy) -> None:
    try:
        await proxy.close()
    except Exception as exc:  # a failure to close must not stop a reload or a shutdown
        log.warning("closing upstream connections failed: %r", exc)


class Reloader:
    """Loads the configuration again and swaps it in, or explains why not.

    `make_proxy` builds the request handler for valid settings; a reload never
    raises, it answers whether the new configuration is now the one serving.
    Every failure, a ConfigError or anything else, is a refused reload: logged,
    counted as `invalid`, and the running config stays.
    """

    def __init__(self, source: Source, holder, make_proxy: Callable[[Settings], object],
                 certificates: ListenerCertificates | None = None) -> None:
        self.source = source
        self.holder = holder
        self.make_proxy = make_proxy
        self.certificates = certificates  # the listener's, reloaded with the config
        self._lock = asyncio.Lock()

    async def reload(self, reason: str) -> bool:
        async with self._lock:  # one at a time, in the order asked
            old: Settings = self.holder.current.settings
            log.info("reloading the config (%s)", reason)
            try:
                # Off the event loop: parsing and rendering every template takes milliseconds.
                settings, warnings = await asyncio.to_thread(load, self.source)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload refused: %s: %s", exc.source, problem)
                log.error("reload refused: %d problem(s); the running config stays", len(exc.problems))
                _count(False)
                return False
            except Exception as exc:  # noqa: BLE001 - whatever a file does to the loader, the old config serves on
                log.debug("reload failed loading the config", exc_info=True)
                log.error("reload refused: the config could not be loaded (%s: %.300s); the running config stays",
                          type(exc).__name__, exc)
                _count(False)
                return False
            for warning in [*warnings, *restart_needed(old, settings)]:
                log.warning("%s", warning)
            if self.certificates is not None and settings.tls is not None:
                try:
                    await self.certificates.reload(settings.tls)
                except Exception as exc:  # noqa: BLE001 - unreadable, mismatched, encrypted: the old certificate serves on
                    log.error("reload refused: the listener certificate could not be loaded (%s: %.300s); "
                              "the running config and certificate stay", type(exc).__name__, exc)
                    _count(False)
                    return False
            try:
                proxy = self.make_proxy(settings)
            except Exception:
                log.exception("reload failed building the new config; the running config stays")
                _count(False)
                return False
            # An upstream whose settings did not change keeps its pool, ejections and health checks.
            warm = proxy.upstreams.adopt(self.holder.current.upstreams, settings.upstreams.values())
            # Maintenance switched on at the admin listener stays on until switched off, as an nginx-style
            # runtime switch does: a reload is no way to end a maintenance window by accident.
            proxy.switches = self.holder.current.switches
            log.info("reloaded %s: %d routes, %d upstreams (%d kept warm)", settings.source, len(settings.routes),
                     len(settings.upstreams), len(warm))
            self.holder.swap(proxy)
            _count(True)
            return True

    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        """Reload when the config file changes, while the running config has `watch_config` on.

        A change is any difference in mtime, size or content hash, so an edit
        within one mtime tick, or a file replaced by one with an old mtime, counts.
        """
        path = self.source.config or self.source.env.get("ERRORPROXY_CONFIG") or None
        if path is None or self.source.upstream:
            return  # the embedded config has no file to watch
        seen = self._signatures(path)
        while True:
            await asyncio.sleep(interval)
            if not self.holder.current.settings.ops.watch_config:
                seen = self._signatures(path)  # switched off: only changes made while on count
                continue
            now = self._signatures(path)
            if now != seen:
                seen = now
                try:
                    await self.reload(f"{path} changed")
                except Exception:  # noqa: BLE001 - `reload` refuses what it cannot load; this keeps the watch alive regardless
                    log.exception("reloading %s failed; still watching it", path)


    def _signatures(self, config: str) -> list[tuple[int, int, str] | None]:
        """The config file's signature, then those of the TLS files the running config names."""
        return [_signature(path) for path in (config, *tls_files(self.holder.current.settings))]


def tls_files(settings: Settings) -> list[str]:
    """Every certificate, key and CA file `settings` reads: the listener's and each upstream's."""
    files = []
    if settings.tls is not None:
        files += [settings.tls.cert, settings.tls.key, settings.tls.client_ca]
    for upstream in settings.upstreams.values():
        if upstream.tls is not None:
            files += [upstream.tls.ca_file, upstream.tls.client_cert, upstream.tls.client_key]
    return [path for path in files if path is not None]


def restart_needed(old: Settings, new: Settings, server: bool = True) -> list[str]:
    """What a reload cannot change in a running process, as warnings (`server`: the `server` limits too)."""
    warnings = []
    if new.listen != old.listen:
        warnings.append(f"listen changed from {old.listen} to {new.listen}: takes a restart; still listening on {old.listen}")
    if (new.tls is None) != (old.tls is None):
        state = "on" if old.tls is not None else "off"
        warnings.append(f"tls was {'removed' if new.tls is None else 'added'}: takes a restart; TLS stays {state}")
    elif new.tls is not None and old.tls is not None:
        for key in ("client_ca", "redirect_from", "redirect_port"):
            if getattr(new.tls, key) != getattr(old.tls, key):
                warnings.append(f"tls.{key} changed: takes a restart; the old value stays (cert and key do reload)")
    if new.listen_mode != old.listen_mode:
        warnings.append("listen_mode changed: takes a restart; the socket keeps its mode")
    if new.ops.admin != old.ops.admin:
        warnings.append(f"admin changed from {old.ops.admin} to {new.ops.admin}: takes a restart; admin stays on {old.ops.admin}")
    # stop_delay and shutdown_timeout are read when the stop begins, and body_timeout by each
    # request, so they do follow a reload; the rest is fixed when a connection's handler is made,
    # or (idle_poll) when the server starts.
    fixed = ("header_timeout", "keepalive_timeout", "max_line_size", "max_headers", "lingering_time", "send_timeout",
             "idle_poll")
    changed = [name for name in fixed if getattr(new.server, name) != getattr(old.server, name)]
    if changed and server:
        warnings.append(f"server.{', server.'.join(changed)} changed: takes a restart; the old values stay")
    return warnings


def _signature(path: str) -> tuple[int, int, str] | None:
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            digest = hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None  # gone for now (an editor's rename dance): its return is a change
    return stat.st_mtime_ns, stat.st_size, digest


def _count(ok: bool) -> None:
    from ..observe.metrics import reload_counted  # here, not above: a `--workers` supervisor never imports prometheus_client

    reload_counted(ok)
