"""Maintenance switched on and off on the admin listener.

    POST   /maintenance[?route=NAME]   on, for every route or one; retry_after and message may be
                                       given as query parameters or a JSON body
    DELETE /maintenance[?route=NAME]   off (the global switch, or that route's)
    GET    /maintenance                what is in maintenance now, and why

    $ curl -X POST 'http://127.0.0.1:9901/maintenance?retry_after=10m' \\
           -H 'Content-Type: application/json' -d '{"message": "Upgrading the database, back by 14:00."}'
    {"switched": "on", "scope": "global", "maintenance": {"on": true, "routes": {...}, "switches": {...}}}

Each answer is JSON. A switch stays on across config reloads until it is
switched off (a reload is no way to end a window by accident); it lasts as
long as the process, or, with a persistent ERRORPROXY_STATE_DIR, across
restarts too. A request carrying an Origin header is refused: no web page,
whichever site it is on, may switch a local admin listener.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web

from ..config.gateway import MAX_MESSAGE
from ..config.values import read_duration
from ..core.maintenance import GLOBAL
from ..http.maintenance import Switches, status

log = logging.getLogger("errorproxy")

MAX_BODY = 64 * 1024  # bytes of a JSON body read: a switch is two values


class Refused(Exception):
    """A switch request that cannot be done as asked: its status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def add_routes(app: web.Application, readiness) -> None:
    """The /maintenance endpoints, switching `readiness.switches()` (see admin.Readiness)."""

    async def switch(request: web.Request) -> web.Response:
        switches = readiness.switches()
        settings = readiness.settings
        try:
            if "Origin" in request.headers:
                raise Refused(403, "a request from a web page (it has an Origin header) cannot switch maintenance")
            scope = _scope(request, [route.name for route in settings.routes])
            if request.method == "POST":
                retry_after, message = _values(request, await _body(request))
                try:
                    switches.switch_on(scope, retry_after, message)
                except OSError as exc:
                    raise Refused(500, f"cannot write the switch in {switches.directory}: {exc.strerror or exc}") from exc
                log.warning("maintenance switched on for %s on the admin listener (retry_after=%s, message=%s)",
                            _name(scope), retry_after, "set" if message else "none")
                switched = "on"
            else:
                await _body(request)  # nothing is read from it, but it must not be some form
                try:
                    was_on = switches.switch_off(scope)
                except OSError as exc:
                    raise Refused(500, f"cannot remove the switch in {switches.directory}: {exc.strerror or exc}") from exc
                log.warning("maintenance switched off for %s on the admin listener%s", _name(scope),
                            "" if was_on else " (it was not on)")
                switched = "off"
        except Refused as refused:
            return web.json_response({"error": str(refused)}, status=refused.status)
        return web.json_response({"switched": switched, "scope": _name(scope),
                                  "maintenance": status(settings, switches)}, headers={"Cache-Control": "no-store"})

    async def show(request: web.Request) -> web.Response:
        return web.json_response({"maintenance": status(readiness.settings, readiness.switches())},
                                 headers={"Cache-Control": "no-store"})

    app.router.add_get("/maintenance", show)
    app.router.add_post("/maintenance", switch)
    app.router.add_delete("/maintenance", switch)


def _name(scope: str) -> str:
    return "global" if scope == GLOBAL else f"route {scope}"


def _scope(request: web.Request, routes: list[str]) -> str:
    route = request.query.get("route")
    if route is None:
        return GLOBAL
    if route not in routes:
        raise Refused(404, f"no route is named {json.dumps(route[:100])} (routes: {', '.join(routes) or 'none'})")
    return route


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object of the body; {} without one. A form is refused: JSON or query parameters only."""
    if not request.body_exists:
        return {}
    if request.content_type != "application/json":
        raise Refused(415, "the body must be JSON (Content-Type: application/json), or use query parameters")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise Refused(413, f"the body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, 'the body must be a JSON object: {"retry_after": "10m", "message": "..."}')
    return data


def _values(request: web.Request, body: dict[str, Any]) -> tuple[int | None, str | None]:
    """retry_after (whole seconds) and message, from the body or else the query."""
    unknown = sorted((set(body) | set(request.query)) - {"retry_after", "message", "route"})
    if unknown or "route" in body:
        raise Refused(400, f"unknown parameter {', '.join(unknown) or 'route (a query parameter)'} "
                           "(known: retry_after, message; route as a query parameter)")
    given = {**request.query, **body}
    retry_after = None
    if given.get("retry_after") is not None:
        try:
            retry_after = math.ceil(read_duration(given["retry_after"]))
        except ValueError as exc:
            raise Refused(400, f"retry_after: {json.dumps(given['retry_after'])[:100]} {exc}") from None
    message = given.get("message")
    if message is not None and not (isinstance(message, str) and message.strip() and len(message) <= MAX_MESSAGE
                                    and _encodable(message)):
        raise Refused(400, f"message must be a non-empty string of at most {MAX_MESSAGE} characters")
    return retry_after, message.strip() if message is not None else None


def _encodable(text: str) -> bool:
    """False for a string with a lone surrogate (JSON's "\\udcff"): no page or JSON could be written with it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
