"""The per-request metrics, counted by `metrics.observe` and handed to prometheus_client by `metrics.flush`.

This checks, on the installed prometheus_client, that the names it reaches
for exist and that what it counts is what the client's own `inc` and
`observe` would have counted, bucket for bucket.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram

from proxy.observe import metrics
from proxy.observe.accesslog import Exchange


def _samples(metric) -> dict[tuple, float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in metric.collect() for sample in family.samples}


def test_the_value_objects_observe_reaches_for_exist() -> None:
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ("a",), registry=registry).labels("x")
    histogram = Histogram("h_seconds", "h", ("a",), buckets=(0.1, 1.0), registry=registry).labels("x")
    assert hasattr(counter, "_value") and callable(counter._value.inc)
    assert callable(histogram._sum.inc) and len(histogram._buckets) == 3
    assert list(histogram._upper_bounds) == [0.1, 1.0, math.inf]


def test_observe_counts_what_the_clients_own_methods_would() -> None:
    """Durations on, between and past the bounds land in the buckets `Histogram.observe` puts them in."""
    route = "test-metrics-values"
    durations = [0.0, 0.005, 0.0051, 0.3, 60.0, 61.0, 1e9]
    for seconds in durations:
        exchange = Exchange("r", "GET", "/", None)
        exchange.route, exchange.status, exchange.upstream_seconds = route, 200, seconds
        metrics.observe(exchange)
    metrics.flush()
    reference = Histogram("reference_seconds", "r", buckets=metrics._BUCKETS, registry=CollectorRegistry())
    for seconds in durations:
        reference.observe(seconds)
    ours = {(name.removeprefix("errorproxy_upstream_duration_seconds"), labels): value
            for (name, labels), value in _samples(metrics.UPSTREAM_DURATION).items()
            if dict(labels).get("route") == route}
    theirs = _samples(reference)
    assert len(theirs) == len(ours) == len(metrics._BUCKETS) + 3  # the buckets, +Inf, _count and _sum
    for (name, labels), value in theirs.items():
        suffix = name.removeprefix("reference_seconds")
        assert ours[suffix, tuple(sorted([*labels, ("route", route)]))] == value, (suffix, labels)
    requests = _samples(metrics.REQUESTS)
    assert requests[("errorproxy_requests_total", (("method", "GET"), ("route", route), ("status", "200")))] == 7


def test_a_count_reaches_prometheus_client_when_flushed_and_only_once() -> None:
    """One process: what `observe` counts waits for the scrape's flush; each request counts once."""
    route = "test-metrics-flush"
    key = ("errorproxy_requests_total", (("method", "OTHER"), ("route", route), ("status", "409")))

    def count() -> None:
        exchange = Exchange("r", "PURGE", "/", None)
        exchange.route, exchange.status, exchange.upstream_seconds = route, 409, 0.02
        metrics.observe(exchange)

    for _ in range(3):
        count()
    assert key not in _samples(metrics.REQUESTS)
    metrics.flush()
    assert _samples(metrics.REQUESTS)[key] == 3
    metrics.flush()
    count()
    metrics.flush()
    assert _samples(metrics.REQUESTS)[key] == 4
    durations = {(name.rsplit("_", 1)[1], dict(labels).get("le")): value
                 for (name, labels), value in _samples(metrics.UPSTREAM_DURATION).items()
                 if dict(labels).get("route") == route}
    assert durations[("bucket", "0.01")] == 0
    assert durations[("bucket", "0.025")] == durations[("bucket", "+Inf")] == durations[("count", None)] == 4
    assert math.isclose(durations[("sum", None)], 0.08)
