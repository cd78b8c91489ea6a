"""Rounds of runs into medians and paired ratios, a table, and bench/results/latest.json.

A ratio is errorproxy's number over nginx's from the same round (the two runs
were back to back), and the median of those per-round ratios is reported:
pairing cancels much of the drift of a shared, noisy machine. The large-body
cases also run nginx with `proxy_buffering off` (`nginx_unbuffered`), paired
the same way in the `ratio_*_unbuffered` ratios. The guard-write case compares
errorproxy with itself: PUTs through the conflict guard over the same PUTs
unguarded (its `versus`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from pathlib import Path

from .cases import Case

METRICS = ("rps", "mib_s", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_mb", "rss_max_mb", "upstream_connections")
# In the order of the table's columns, which the ratio rows follow.
RATIOS = {"ratio_rps": "rps", "ratio_mib_s": "mib_s", "ratio_p50": "p50_ms", "ratio_p99": "p99_ms",
          "ratio_cpu_us_per_req": "cpu_us_per_req", "ratio_rss_mb": "rss_mb"}


def machine(versions: dict[str, str], wrk_version: str) -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        **versions,
        "wrk": wrk_version,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _median(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(runs: list[dict | None]) -> dict[str, object]:
    """Median of each metric over the rounds, with the rounds themselves kept."""
    done = [run for run in runs if run is not None]
    summary: dict[str, object] = {metric: _median([run.get(metric) for run in done]) for metric in METRICS}
    if any("etag_kept" in run for run in done):
        summary["etag_kept"] = all(run["etag_kept"] for run in done)
    summary["errors"] = sum(run.get("errors", 0) for run in done)
    summary["rounds"] = done
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def case_result(case: Case, workers: int, rounds: list[dict], unavailable: dict[str, str]) -> dict[str, object]:
    """One entry of latest.json's `cases`, from the rounds of one case at one worker count."""
    entry: dict[str, object] = {"name": f"{case.name}-{workers}w", "title": case.title, "path": case.path,
                                "workers": workers, "connections": case.connections, "versus": case.versus}
    for proxy in case.proxies:
        if proxy in unavailable:
            entry[proxy] = {"available": False, "reason": unavailable[proxy]}
        else:
            entry[proxy] = summarize([run.get(proxy) for run in rounds])
    if case.baseline:
        entry["direct"] = summarize([run.get("direct") for run in rounds])
    entry.update(_ratios(rounds, case.versus))
    if case.unbuffered:
        entry.update({f"{name}_unbuffered": value for name, value in _ratios(rounds, "nginx_unbuffered").items()})
    if case.baseline:
        for metric in ("p50_ms", "p99_ms"):
            entry[f"added_{metric}"] = {
                proxy: _median([run[proxy][metric] - run["direct"][metric]
                                for run in rounds if run.get(proxy) and run.get("direct")])
                for proxy in case.proxies if proxy not in unavailable
            }
    return entry


def _ratios(rounds: list[dict], versus: str) -> dict[str, float | None]:
    """Each of RATIOS: the median over rounds of errorproxy's number over `versus`'s in that round."""
    paired = [run for run in rounds if run.get("errorproxy") and run.get(versus)]
    return {name: _median([_ratio(run["errorproxy"].get(metric), run[versus].get(metric)) for run in paired])
            for name, metric in RATIOS.items()}


def write(path: Path, machine_info: dict, settings: dict, cases: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps({"machine": machine_info, "settings": settings, "cases": cases}, indent=2) + "\n")
    partial.replace(path)


# The table ----------------------------------------------------------------------

_COLUMNS = (("case", 14), ("proxy", 11), ("req/s", 9), ("MiB/s", 8), ("p50 ms", 8), ("p99 ms", 8),
            ("CPU µs/req", 11), ("RSS MB sum/max", 15), ("upstr conns", 11))


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def _ms(value: float | None) -> str:
    return _fmt(value, 3 if value is not None and value < 1 else 2)


def _row(cells: list[str]) -> str:
    return "  ".join(cell.rjust(width) if i > 1 else cell.ljust(width)
                     for i, (cell, (_, width)) in enumerate(zip(cells, _COLUMNS)))


def _proxy_row(label: str, proxy: str, numbers: dict) -> str:
    if numbers.get("available") is False:
        return _row([label, proxy, "not available", "", "", "", "", "", ""]).rstrip()
    rss = "-" if numbers.get("rss_mb") is None else f"{numbers['rss_mb']:.1f}/{numbers['rss_max_mb']:.1f}"
    return _row([label, proxy, _fmt(numbers.get("rps")), _fmt(numbers.get("mib_s")), _ms(numbers.get("p50_ms")),
                 _ms(numbers.get("p99_ms")), _fmt(numbers.get("cpu_us_per_req")), rss,
                 _fmt(numbers.get("upstream_connections"), 0)])


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ratio_row(label: str, entry: dict, suffix: str) -> list[str]:
    """The row of the ratios named `ratio_*{suffix}`, or none when no round was paired."""
    if entry.get(f"ratio_rps{suffix}") is None:
        return []
    return [_row(["", label, *(_x(entry[f"{name}{suffix}"]) for name in RATIOS), ""]).rstrip()]


def table(cases: list[dict]) -> str:
    lines = [_row([name for name, _ in _COLUMNS]), _row(["-" * width for _, width in _COLUMNS])]
    for entry in cases:
        lines.append(_proxy_row(entry["name"], "errorproxy", entry["errorproxy"]))
        versus = entry.get("versus", "nginx")  # guard-write: the same PUT, unguarded
        lines.append(_proxy_row("", versus, entry[versus]))
        if "nginx_unbuffered" in entry:
            lines.append(_proxy_row("", "nginx unbuf", entry["nginx_unbuffered"]))
        if "direct" in entry:
            lines.append(_proxy_row("", "direct", entry["direct"]))
        lines.extend(_ratio_row("ep/nginx" if versus == "nginx" else "ratio", entry, ""))
        if "nginx_unbuffered" in entry:
            lines.extend(_ratio_row("ep/unbuf", entry, "_unbuffered"))
        if "added_p50_ms" in entry:
            added = ", ".join(f"{proxy} {entry['added_p50_ms'][proxy]:+.3f} ms p50 / "
                              f"{entry['added_p99_ms'][proxy]:+.3f} ms p99"
                              for proxy in entry["added_p50_ms"] if entry["added_p50_ms"][proxy] is not None)
            if added:
                lines.append(f"{'':14}  added over direct: {added}")
        if entry["errorproxy"].get("etag_kept") is not None:
            lines.append(f"{'':14}  409 ETag kept: errorproxy {entry['errorproxy']['etag_kept']}, "
                         f"nginx {entry['nginx'].get('etag_kept')}")
        lines.append("")
    return "\n".join(lines)
