"""Prometheus metrics, created once per process, and their text exposition.

    errorproxy_requests_total{route,method,status}                      counter
    errorproxy_intercepted_total{route,upstream_status,status,format}   counter
    errorproxy_upstream_errors_total{upstream,kind}                     counter
    errorproxy_upstream_retries_total{upstream,reason}                  counter
    errorproxy_upstream_retry_overflow_total{upstream}                  counter
    errorproxy_upstream_ejections_total{upstream,reason}                counter
    errorproxy_upstream_duration_seconds{route}                         histogram
    errorproxy_conflicts_prevented_total{route}                         counter
    errorproxy_precondition_required_total{route}                       counter
    errorproxy_lock_wait_seconds{route}                                 histogram
    errorproxy_config_reloads_total{result}                             counter
    errorproxy_build_info{version,python,aiohttp}                       gauge, always 1

Every label value is bounded: route and upstream names come from the config
("-" when no route matched), methods outside the standard ones are "OTHER",
statuses are three-digit numbers, `kind` is an RFC 9209 error name such as
`connection_refused`, a retry's `reason` is what `retry_on` names (`connect`,
`reset`, `502`, `503`, `504`) and an ejection's is `connect`, `failures` or
`health_check`.

With PROMETHEUS_MULTIPROC_DIR set before this module is first imported (as
`--workers` does), each process writes its values to files there and
`render_metrics` sums every process's, so any worker can answer a scrape.
"""

from __future__ import annotations

import os
import platform
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
    generate_latest,
)

from .. import __version__

if TYPE_CHECKING:
    from .accesslog import Exchange

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROC_DIR:
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)  # the first value written opens a file there

disable_created_metrics()  # no `*_created` twin of every series: Prometheus has no use for them

NO_ROUTE = "-"
# RFC 9110 §9 and RFC 5789; any other token would make a label value per spelling.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
# Latency up to a minute: the default read_timeout is 60s.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "errorproxy_requests_total", "Requests answered, by route, method and final status.",
    ("route", "method", "status"),
)
INTERCEPTED = Counter(
    "errorproxy_intercepted_total", "Upstream responses rewritten into a problem, by rendered format.",
    ("route", "upstream_status", "status", "format"),
)
UPSTREAM_ERRORS = Counter(
    "errorproxy_upstream_errors_total", "Failures talking to an upstream, by RFC 9209 Proxy-Status error.",
    ("upstream", "kind"),
)
UPSTREAM_RETRIES = Counter(
    "errorproxy_upstream_retries_total", "Requests tried again on an upstream, by what the failed try came to.",
    ("upstream", "reason"),
)
UPSTREAM_RETRY_OVERFLOW = Counter(
    "errorproxy_upstream_retry_overflow_total", "Retries not made because the upstream's retry budget was spent.",
    ("upstream",),
)
UPSTREAM_EJECTIONS = Counter(
    "errorproxy_upstream_ejections_total",
    "Targets taken out of rotation: unreachable (connect), failing in a row (failures), or by health check.",
    ("upstream", "reason"),
)
UPSTREAM_DURATION = Histogram(
    "errorproxy_upstream_duration_seconds", "Time from receiving a request to the upstream's response headers.",
    ("route",), buckets=_BUCKETS,
)
CONFLICTS_PREVENTED = Counter(
    "errorproxy_conflicts_prevented_total",
    "Guarded writes refused because the resource was not in the state their precondition named (412, or 409).",
    ("route",),
)
PRECONDITION_REQUIRED = Counter(
    "errorproxy_precondition_required_total", "Guarded writes refused for carrying no precondition (428).",
    ("route",),
)
LOCK_WAIT = Histogram(
    "errorproxy_lock_wait_seconds",
    "Time a guarded write waited for its resource's lock, refused waits (lock_timeout, lock store down) included.",
    ("route",), buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CONFIG_RELOADS = Counter(
    "errorproxy_config_reloads_total", "Configuration reloads: ok, or invalid (the running config was kept).",
    ("result",),
)
BUILD_INFO = Gauge(
    "errorproxy_build_info", "Always 1; the labels say what is running.",
    ("version", "python", "aiohttp"), multiprocess_mode="livemax",
)
BUILD_INFO.labels(__version__, platform.python_version(), aiohttp.__version__).set(1)
_RELOADS = {True: CONFIG_RELOADS.labels("ok"), False: CONFIG_RELOADS.labels("invalid")}  # both exist from 0

# The two series every request touches are counted into plain numbers by label
# values (bounded), and handed to prometheus_client's children by `flush`: before
# each scrape when one process serves (the admin handler calls it), at once in
# multiprocess mode, where any worker may answer the scrape from the shared files.
# A child's `inc` takes a lock and its `observe` a bisect of its own: per scrape,
# not per request, in the common case. The histogram's own values are counted into
# (`_sum`, `_buckets`: prometheus_client's names, checked by
# tests/unit/test_metrics_values.py), bucket for bucket as `observe` would.
_SHARED = bool(_MULTIPROC_DIR)
_counts: dict[tuple[str, str, int], int] = {}  # requests since the last flush, by (route, method, status)
_times: dict[str, list[float]] = {}  # by route, since the last flush: the sum of seconds, then each bucket's count
_request_children: dict[tuple[str, str, int], Any] = {}  # label children, made once: `labels()` validates and locks
_duration_children: dict[str, Any] = {}
_intercepted: dict[tuple[str, int | None, int, str | None], Counter] = {}
_upstream_errors: dict[tuple[str, str], Counter] = {}


def method_label(method: str) -> str:
    """`GET` stays `GET`; `PURGE`, `get` and anything else non-standard are `OTHER`."""
    return method if method in METHODS else "OTHER"


def observe(exchange: Exchange) -> None:
    """Count one finished request."""
    route = exchange.route or NO_ROUTE
    key = (route, method_label(exchange.method), exchange.status)
    counts = _counts
    counts[key] = counts.get(key, 0) + 1
    seconds = exchange.upstream_seconds
    if seconds is not None:
        times = _times.get(route)
        if times is None:
            times = _times[route] = [0.0] * (len(_BUCKETS) + 2)
        times[0] += seconds
        times[bisect_left(_BUCKETS, seconds) + 1] += 1  # the first bound at or above; past the last, +Inf
    if exchange.intercepted:
        ikey = (route, exchange.upstream_status, exchange.status, exchange.format)
        child = _intercepted.get(ikey)
        if child is None:
            child = _intercepted[ikey] = INTERCEPTED.labels(route, str(ikey[1]), str(ikey[2]), str(ikey[3]))
        child.inc()
    if _SHARED:
        flush()


def flush() -> None:
    """Hand what `observe` counted since the last flush to prometheus_client (in the event loop's thread)."""
    for key, count in _counts.items():
        counter = _request_children.get(key)
        if counter is None:
            counter = _request_children[key] = REQUESTS.labels(key[0], key[1], str(key[2]))
        counter.inc(count)
    _counts.clear()
    for route, times in _times.items():
        child = _duration_children.get(route)
        if child is None:
            child = _duration_children[route] = UPSTREAM_DURATION.labels(route)
        child._sum.inc(times[0])
        for bucket, count in zip(child._buckets, times[1:]):
            if count:
                bucket.inc(count)
    _times.clear()


def upstream_failed(upstream: str, kind: str | None) -> None:
    """Count a failure of `upstream`; `kind` is the Proxy-Status error (`connection_refused`, ...)."""
    key = (upstream, kind or "proxy_internal_error")
    child = _upstream_errors.get(key)
    if child is None:
        child = _upstream_errors[key] = UPSTREAM_ERRORS.labels(*key)
    child.inc()


def upstream_retried(upstream: str, reason: str) -> None:
    """Count a retry of a request to `upstream`; `reason` is what the failed try came to (`503`, `reset`, ...)."""
    UPSTREAM_RETRIES.labels(upstream, reason).inc()  # rare: no cached children


def retry_overflowed(upstream: str) -> None:
    """Count a retry not made because `upstream`'s retry budget was spent."""
    UPSTREAM_RETRY_OVERFLOW.labels(upstream).inc()


def target_ejected(upstream: str, reason: str) -> None:
    """Count a target of `upstream` taken out of rotation (`connect`, `failures`, `health_check`)."""
    UPSTREAM_EJECTIONS.labels(upstream, reason).inc()


def conflict_prevented(route: str) -> None:
    """Count a guarded write refused because its precondition did not hold."""
    CONFLICTS_PREVENTED.labels(route).inc()


def precondition_required(route: str) -> None:
    """Count a guarded write refused with 428 for carrying no If-Match."""
    PRECONDITION_REQUIRED.labels(route).inc()


def lock_waited(route: str, seconds: float) -> None:
    """Observe how long a guarded write waited for its lock (granted or not)."""
    LOCK_WAIT.labels(route).observe(seconds)


def reload_counted(ok: bool) -> None:
    """Count a configuration reload: `ok`, or `invalid` when validation failed and the old config stayed."""
    _RELOADS[ok].inc()


_registry: CollectorRegistry | None = None


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of every metric (of every process, in multiprocess mode)."""
    global _registry
    if _registry is None:
        if _MULTIPROC_DIR:
            from prometheus_client import multiprocess

            _registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(_registry, _MULTIPROC_DIR)
        else:
            _registry = REGISTRY
    return generate_latest(_registry), CONTENT_TYPE_LATEST
