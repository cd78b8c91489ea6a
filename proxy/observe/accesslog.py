"""The access log: one line a request on the `errorproxy.access` logger.

The handler fills an `Exchange` with what it learns on the way (route,
upstream, upstream status, whether it rewrote the response); `AccessLog.write`
turns a finished one into a JSON object (the default) or a logfmt text line:

    {"time": "2025-01-31T09:14:03.512Z", "request_id": "7f9c...",
     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "method": "PUT",
     "path": "/documents/42", "route": "api", "upstream": "legacy", "upstream_status": 409,
     "status": 409, "intercepted": true, "format": "json", "bytes_in": 18,
     "bytes_out": 312, "duration_ms": 4.87}

`trace_id` is the trace id of a valid W3C `traceparent` (core/trace.py), else
null (`-` in text). No secrets reach it: no header is logged (so no
Authorization, Cookie or Set-Cookie) but for that validated id, and the path
loses its query string, fragment and any `user:password@` of an
absolute-form request target.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from ..core.settings import Route

LOGGER = "errorproxy.access"

log = logging.getLogger(LOGGER)


class Exchange:
    """What is known about one request and its response, filled in as the handler goes."""

    __slots__ = (
        "request_id", "trace_id", "method", "raw_path", "route", "upstream", "upstream_status", "status",
        "intercepted", "format", "bytes_in", "bytes_out", "started", "seconds", "upstream_seconds",
    )

    def __init__(self, request_id: str, method: str, raw_path: str, route: Route | None,
                 trace_id: str | None = None) -> None:
        self.request_id = request_id
        self.trace_id = trace_id  # of the request's traceparent, when valid
        self.method = method
        self.raw_path = raw_path  # as received; `loggable_path` strips it only if a line is written
        self.route = route.name if route is not None else None
        self.upstream = route.upstream.name if route is not None else None
        self.upstream_status: int | None = None
        self.status = 500  # until a response says otherwise
        self.intercepted = False
        self.format: str | None = None  # json | html | text | passthrough, or None (no response sent)
        self.bytes_in = 0
        self.bytes_out = 0  # response body bytes; counted as they go for a streamed response
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.upstream_seconds: float | None = None  # to the upstream's response headers

    def answered(self, status: int) -> None:
        """The upstream's response headers arrived (only the first call counts)."""
        if self.upstream_status is None:
            self.upstream_status = status
            self.upstream_seconds = time.perf_counter() - self.started

    def finish(self, status: int, format: str | None, bytes_in: int, bytes_out: int | None = None) -> None:
        """The response is decided: its status, its format (json | html | text | passthrough, or None
        when none was sent) and the body bytes received; `bytes_out` when known only now (a rendered
        error's body), else what was counted while streaming."""
        self.seconds = time.perf_counter() - self.started
        self.status = status
        self.format = format
        self.bytes_in = bytes_in
        if bytes_out is not None:
            self.bytes_out = bytes_out


class AccessLog:
    """Writes finished exchanges in the configured style: `json`, `text` or `off`."""

    def __init__(self, style: str = "json") -> None:
        self.style = style
        self._format = {"json": json_line, "text": text_line}.get(style)

    def write(self, exchange: Exchange) -> None:
        if self._format is not None and log.isEnabledFor(logging.INFO):
            log.info("%s", self._format(exchange, time.time()))


def fields(exchange: Exchange, now: float) -> dict[str, object]:
    """The record's fields, in order; `now` is the wall-clock time at the end of the request."""
    return {
        "time": rfc3339(now - exchange.seconds),
        "request_id": exchange.request_id,
        "trace_id": exchange.trace_id,
        "method": exchange.method,
        "path": loggable_path(exchange.raw_path),
        "route": exchange.route,
        "upstream": exchange.upstream,
        "upstream_status": exchange.upstream_status,
        "status": exchange.status,
        "intercepted": exchange.intercepted,
        "format": exchange.format,
        "bytes_in": exchange.bytes_in,
        "bytes_out": exchange.bytes_out,
        "duration_ms": round(exchange.seconds * 1000, 3),
    }


def json_line(exchange: Exchange, now: float) -> str:
    return json.dumps(fields(exchange, now), ensure_ascii=False, separators=(",", ":"))


def text_line(exchange: Exchange, now: float) -> str:
    """logfmt: `time=... request_id=... method=GET path=/x ... duration_ms=1.5`; absent values are `-`."""
    return " ".join(f"{name}={_logfmt(value)}" for name, value in fields(exchange, now).items())


def _logfmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "='):
        return text
    return json.dumps(text, ensure_ascii=False)


def loggable_path(raw: str) -> str:
    """The request target without what may carry secrets.

    >>> loggable_path("/login?password=hunter2#frag")
    '/login'
    >>> loggable_path("http://user:pw@example.com/a/b?x=1")
    '/a/b'
    """
    for separator in ("?", "#"):
        if separator in raw:
            raw = raw.partition(separator)[0]
    if not raw.startswith("/") and "://" in raw:  # absolute form: drop scheme, user info and host
        raw = "/" + raw.partition("://")[2].partition("/")[2]
    return raw


def rfc3339(timestamp: float) -> str:
    """UTC with milliseconds.

    >>> rfc3339(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    seconds = int(timestamp)
    millis = int((timestamp - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def configure(stream: TextIO | None = None) -> None:
    """Access lines go out bare, one a line (a JSON line stays valid JSON), at INFO whatever the log level.

    Called once by the command line; until then (in tests, say) lines go through the root logger.
    """
    if any(getattr(handler, "_errorproxy_access", False) for handler in log.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._errorproxy_access = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
