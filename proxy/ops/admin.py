"""The admin listener: /healthz, /readyz and /metrics, on its own address only.

    GET /healthz   200 "ok" while the process runs (liveness)
    GET /readyz    200 "ready" while the proxy accepts requests; 503 before, and
                   from the moment it starts stopping; with `readiness:
                   {check_upstreams: true}`, also 503 while an upstream has no
                   usable target (each is ejected or refuses a TCP connection),
                   naming its targets and why
                   (a JSON object instead when Accept asks for application/json); while
                   a route is in maintenance it stays ready, and says `maintenance: on`
    GET /metrics   Prometheus text format (every worker's, in multiprocess mode)
    /maintenance   GET the state, POST to switch maintenance on, DELETE off (ops.maintenance)

It never shares the public listener: a public `GET /metrics` is forwarded like
any other path. With worker processes, the socket is opened with SO_REUSEPORT
so that every worker listens on the admin address (and any one answers).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiohttp import web
from yarl import URL

from ..core.settings import Settings
from ..core.targets import dial_key, is_unix
from ..upstream import Upstreams
from ..http.aiohttp_private import listening_urls
from ..http.maintenance import Switches, status as maintenance_status
from . import maintenance
from .listeners import start_side

log = logging.getLogger("errorproxy")

_PROBE_TIMEOUT = 1.0  # seconds, at most, for each upstream connection /readyz tries


class AdminListenError(OSError):
    """The admin address cannot be listened on; `address` says which, for the message."""

    def __init__(self, errno: int | None, strerror: str, address: str) -> None:
        super().__init__(errno, strerror)
        self.address = address


class Readiness:
    """What /readyz answers from.

    The server sets `ready` once the public listener accepts and clears it
    first thing when asked to stop; `current()` gives the running settings,
    which a reload may replace (`lambda: holder.current.settings`),
    `upstreams()` the running `Upstreams`, whose ejections count too, and
    `switches()` the maintenance switches (which a reload hands on).
    """

    __slots__ = ("ready", "current", "upstreams", "switches")

    def __init__(self, current: Callable[[], Settings], upstreams: Callable[[], Upstreams] | None = None,
                 switches: Callable[[], Switches] | None = None) -> None:
        self.ready = False
        self.current = current
        self.upstreams = upstreams
        if switches is None:
            own = Switches.from_env()
            switches = lambda: own  # noqa: E731 - the process's own, when the server hands none
        self.switches = switches

    @property
    def settings(self) -> Settings:
        return self.current()


READINESS = web.AppKey("readiness", Readiness)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    readiness = request.app[READINESS]
    if not readiness.ready:
        return web.Response(status=503, text="not ready: not accepting requests\n")
    settings = readiness.settings
    if settings.ops.ready_needs_upstreams:
        failing = await unreachable(settings, readiness.upstreams() if readiness.upstreams is not None else None)
        if failing:
            return web.Response(status=503, text="not ready: upstreams unreachable: " + "; ".join(failing) + "\n")
    # In maintenance, still ready: the proxy answers (503 by choice), and taking it out of rotation
    # would turn the maintenance page into a load balancer's own error.
    state = maintenance_status(settings, readiness.switches())
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"status": "ready", "maintenance": state})
    if not state["on"]:
        return web.Response(text="ready\n")
    routes = "; ".join(f"{name}: {window['source']}" for name, window in state["routes"].items())
    return web.Response(text=f"ready\nmaintenance: on ({routes})\n")


async def _metrics(request: web.Request) -> web.Response:
    from ..observe.metrics import flush, render_metrics  # here: importing prometheus_client fixes its multiprocess mode

    flush()  # what this process counted since the last scrape
    # Off the event loop: in multiprocess mode this reads every worker's files.
    body, content_type = await asyncio.to_thread(render_metrics)
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


async def unreachable(settings: Settings, upstreams: Upstreams | None = None) -> list[str]:
    """`name target: reason` for each target of each upstream that has no usable target.

    A target is usable when it is not ejected (by `upstreams`, when given:
    unreachable, failing, or failing its health check) and accepts a TCP
    connection. One usable target is enough for its upstream: the proxy
    sends it the requests the others would have had.
    """
    failing = []
    for upstream in settings.upstreams.values():
        ejected = upstreams.ejected(upstream) if upstreams is not None else [False] * len(upstream.targets)
        timeout = min(upstream.connect_timeout, _PROBE_TIMEOUT)
        reasons = await asyncio.gather(*(
            _ejected() if out else _probe(target, timeout) for target, out in zip(upstream.targets, ejected)
        ))
        if all(reason is not None for reason in reasons):
            failing += [f"{upstream.name} {_where(target)}: {reason}" for target, reason in zip(upstream.targets, reasons)]
    return failing


def _where(target: URL) -> str:
    """`127.0.0.1:9000`, or a Unix target's socket path."""
    host, port = dial_key(target)
    return host if is_unix(target) else f"{host}:{port}"


async def _ejected() -> str:
    return "ejected"


async def _probe(target: URL, timeout: float) -> str | None:
    """None if `target` accepts a connection within `timeout`, else why not."""
    try:
        async with asyncio.timeout(timeout):
            host, port = dial_key(target)
            if is_unix(target):
                _, writer = await asyncio.open_unix_connection(host)
            else:
                _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no connection within {timeout:g}s"
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


def make_app(readiness: Readiness) -> web.Application:
    app = web.Application()
    app[READINESS] = readiness
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    maintenance.add_routes(app, readiness)
    return app


class Admin:
    """The admin listener's lifecycle: `await start()` after the public site, `await stop()` last."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self, reuse_port: bool = False) -> list[str]:
        """Listen on `settings.ops.admin` (nothing if it is None); the URLs listened on.

        `reuse_port` (SO_REUSEPORT) lets every worker process listen on the one
        admin address; a single process binds it alone, so a clash is an error.
        """
        address = self.readiness.settings.ops.admin
        if address is None:
            return []
        runner = web.AppRunner(make_app(self.readiness), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = await start_side(runner, address, reuse_port)
        except OSError as exc:
            raise AdminListenError(exc.errno, exc.strerror or str(exc), f"admin {address}") from exc
        self._runner = runner
        urls = listening_urls(site)
        log.info("admin listening on %s", ", ".join(urls))
        return urls

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

