"""The soak's pure parts: restart windows, percentiles, the summary, the `flat` verdict and the table.

Nothing here does I/O, so the unit tests feed it samples by hand. Times are
seconds since the traffic started. A sample is a dict as written to the JSON:

    {"t": 60.0, "rss_mib": 48.1, "fds": 71, "upstream_conns": 29, "upstream_close_wait": 0,
     "pids": [4242], "requests": {"ok": 5120, ...}, "latency_ms": {"p50": 3.2, "p99": 41.0, "n": 4300}}

A restart is `{"down_at": 60.0, "up_at": 61.4}` (`up_at` is None while the
upstream is still down). A quiet reading (before the traffic, and after it
stopped) has `fds`, `upstream_conns` and `upstream_close_wait`.
"""

from __future__ import annotations

import math

RSS_FACTOR = 1.2  # the last sample's RSS may be this times the baseline's ...
RSS_SLACK_MIB = 10.0  # ... plus this
BASELINE_AT = 60.0  # seconds: the baseline is the first sample from minute 1 on (a third of a shorter run)
SETTLE = 5.0  # seconds after the upstream is back before its restart is judged
RESTART_GRACE = 2.0  # seconds after the upstream is back in which a 502/504 or a cut body still counts as the restart's
QUIET_WAIT = 10.0  # seconds the proxy gets, once the traffic stops, to close what it should
QUIET_SLACK_FDS = 8  # fds a proxy may open lazily during traffic and keep (metric files, a resolver, ...)

RULE = (
    f"flat when all hold: (rss) the last sample's RSS <= {RSS_FACTOR} x the baseline's + {RSS_SLACK_MIB:g} MiB, "
    f"the baseline being the first sample clear of restarts from minute 1 on (a third of a shorter run); "
    f"(after_restarts) in the first sample {SETTLE:g} s or more after each restarted upstream is back, fds and "
    f"upstream connections <= the baseline's + "
    f"max(8, concurrency/4); (quiet_end) within {QUIET_WAIT:g} s of the traffic stopping, no upstream socket in CLOSE_WAIT "
    f"and fds - upstream connections <= the same before the traffic + {QUIET_SLACK_FDS}; "
    f"(outcomes) no unexpected outcome; (tracebacks) no line of the proxy's log starts with 'Traceback'; "
    f"(processes) the proxy's processes are the same ones from start to end"
)


def in_restart(start: float, end: float, restarts: list[dict], grace: float = RESTART_GRACE) -> bool:
    """Whether a request that ran from `start` to `end` overlapped a restart (down, then `grace` after up).

    >>> restarts = [{"down_at": 60.0, "up_at": 61.5}]
    >>> in_restart(59.0, 60.2, restarts), in_restart(63.0, 63.1, restarts), in_restart(64.0, 64.1, restarts)
    (True, True, False)
    >>> in_restart(70.0, 70.1, [{"down_at": 69.0, "up_at": None}])  # still down
    True
    """
    for restart in restarts:
        up_at = restart["up_at"]
        until = math.inf if up_at is None else up_at + grace
        if start <= until and end >= restart["down_at"]:
            return True
    return False


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None for none.

    >>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50), percentile(list(range(1, 101)), 99), percentile([], 50)
    (3.0, 99, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def baseline(samples: list[dict], restarts: list[dict], duration: float) -> dict | None:
    """The sample later ones are compared with: the first at or after minute 1 (or a third of a shorter
    run) that is clear of every restart and its settling time; else the last clear one before; else the first.
    """
    if not samples:
        return None
    at = min(BASELINE_AT, duration / 3)
    clear = [sample for sample in samples if not in_restart(sample["t"], sample["t"], restarts, SETTLE)]
    later = [sample for sample in clear if sample["t"] >= at]
    if later:
        return later[0]
    return clear[-1] if clear else samples[0]


def _check(ok: bool, detail: str) -> dict:
    return {"ok": ok, "detail": detail}


def verdict(samples: list[dict], restarts: list[dict], quiet_start: dict, quiet_end: dict, totals: dict[str, int],
            tracebacks: int, concurrency: int, duration: float) -> dict:
    """Every check of RULE on the run's readings, and `flat`: whether all passed."""
    checks: dict[str, dict] = {}
    base = baseline(samples, restarts, duration)
    if base is None:
        checks["samples"] = _check(False, "no sample was taken")
        return {"flat": False, "rule": RULE, "checks": checks}
    end = samples[-1]
    limit = RSS_FACTOR * base["rss_mib"] + RSS_SLACK_MIB
    checks["rss"] = _check(end["rss_mib"] <= limit, f"end {end['rss_mib']:.1f} MiB, baseline {base['rss_mib']:.1f} MiB "
                                                    f"at {base['t']:g} s, limit {limit:.1f} MiB")

    margin = max(8, concurrency // 4)
    judged, failed = 0, []
    for number, restart in enumerate(restarts):
        if restart["up_at"] is None:
            continue
        following = restarts[number + 1]["down_at"] if number + 1 < len(restarts) else math.inf
        after = next((s for s in samples if restart["up_at"] + SETTLE <= s["t"] < following), None)
        if after is None:
            continue
        judged += 1
        if after["fds"] > base["fds"] + margin or after["upstream_conns"] > base["upstream_conns"] + margin:
            failed.append(f"at {after['t']:g} s: {after['fds']} fds, {after['upstream_conns']} upstream connections")
    checks["after_restarts"] = _check(not failed, (
        f"{judged} of {len(restarts)} restarts judged against baseline {base['fds']} fds, "
        f"{base['upstream_conns']} upstream connections, margin {margin}" + ("; over: " + "; ".join(failed) if failed else "")))

    own_start = quiet_start["fds"] - quiet_start["upstream_conns"]
    own_end = quiet_end["fds"] - quiet_end["upstream_conns"]
    checks["quiet_end"] = _check(
        quiet_end["upstream_close_wait"] == 0 and own_end <= own_start + QUIET_SLACK_FDS,
        f"fds less upstream connections: {own_start} before, {own_end} after; "
        f"{quiet_end['upstream_conns']} upstream connections kept, {quiet_end['upstream_close_wait']} in CLOSE_WAIT")

    unexpected = totals.get("unexpected", 0)
    checks["outcomes"] = _check(unexpected == 0, f"{unexpected} unexpected of {sum(totals.values())} requests")
    checks["tracebacks"] = _check(tracebacks == 0, f"{tracebacks} traceback(s) in the proxy's log")
    changed = [s["t"] for s in samples if s["pids"] != samples[0]["pids"]]
    checks["processes"] = _check(not changed, "same processes throughout" if not changed else
                                 f"the proxy's processes changed at {', '.join(f'{t:g} s' for t in changed[:5])}")
    return {"flat": all(check["ok"] for check in checks.values()), "rule": RULE, "checks": checks}


def tracebacks(log: str, keep: int = 3) -> tuple[int, list[str]]:
    r"""How many lines of the proxy's log start a traceback, and the first `keep` of them with what follows.

    A scrubbed upstream body is logged as one repr'd line, so the traceback the soak's
    upstream sends never starts a line; only the proxy's own do.

    >>> tracebacks("WARNING body='Traceback (most recent call last):\\n...'\nTraceback (most recent call last):\n  x")
    (1, ['Traceback (most recent call last):\n  x'])
    """
    lines = log.splitlines()
    starts = [number for number, line in enumerate(lines) if line.startswith("Traceback")]
    return len(starts), ["\n".join(lines[number:number + 20]) for number in starts[:keep]]


def summarize(samples: list[dict], restarts: list[dict], totals: dict[str, int], latencies_ms: list[float]) -> dict:
    """Start, end and max of each reading; requests by outcome; latency over the whole run."""
    summary: dict[str, object] = {}
    for key in ("rss_mib", "fds", "upstream_conns", "upstream_close_wait"):
        values = [sample[key] for sample in samples]
        summary[key] = {"start": values[0], "end": values[-1], "max": max(values)} if values else None
    summary["requests"] = dict(totals)
    summary["requests_total"] = sum(totals.values())
    summary["latency_ms"] = {"p50": _round(percentile(latencies_ms, 50)), "p99": _round(percentile(latencies_ms, 99)),
                             "n": len(latencies_ms)}
    summary["restarts"] = len(restarts)
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


OUTCOMES = ("ok", "rewritten", "cut", "restart", "client_abort", "unexpected")


def table(samples: list[dict], summary: dict, result: dict) -> str:
    """The samples as rows, then the verdict, for a terminal."""
    head = ("t s", "RSS MiB", "fds", "up conns", "CLOSE_WAIT", "p50 ms", "p99 ms", *OUTCOMES)
    rows = [head]
    for sample in samples:
        latency = sample["latency_ms"]
        rows.append((f"{sample['t']:.0f}", f"{sample['rss_mib']:.1f}", str(sample["fds"]), str(sample["upstream_conns"]),
                     str(sample["upstream_close_wait"]), _ms(latency["p50"]), _ms(latency["p99"]),
                     *(str(sample["requests"].get(outcome, 0)) for outcome in OUTCOMES)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    totals = summary["requests"]
    lines.append("")
    lines.append(f"{summary['requests_total']:,} requests: " +
                 ", ".join(f"{outcome} {totals.get(outcome, 0):,}" for outcome in OUTCOMES) +
                 f"; {summary['restarts']} upstream restarts; p50 {_ms(summary['latency_ms']['p50'])} ms, "
                 f"p99 {_ms(summary['latency_ms']['p99'])} ms")
    for name, check in result["checks"].items():
        lines.append(f"  {'ok  ' if check['ok'] else 'FAIL'} {name}: {check['detail']}")
    lines.append(f"flat: {str(result['flat']).lower()}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
