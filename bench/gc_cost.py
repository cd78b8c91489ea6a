"""What the garbage collector costs errorproxy per request, at each young-generation threshold.

    python bench/gc_cost.py                       # /ok, 50 connections: CPython's 700 against errorproxy's own
    python bench/gc_cost.py --connections 1000 --thresholds 700,2000,default --seconds 5

errorproxy (one process, the bench's config) runs in front of the bench's
nginx upstream with a hook that times every collection (`gc.callbacks`).
A number N fixes the young generation's threshold at N (700 is CPython's
own); `default` leaves errorproxy's (`proxy.ops.tuning`: GC_THRESHOLD, and
GC_PER_CONNECTION a connection past the first hundred). wrk loads it for a warm-up second,
the counts are reset (SIGUSR1), then it runs for `--seconds`. Start-up's one
collection (`tune_gc`) is never counted. Thresholds alternate over `--rounds`
so that a machine getting slower or faster weighs on each alike.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import servers  # noqa: E402
from bench.procs import Group, ensure_tools, free_port  # noqa: E402
from bench.wrkparse import parse  # noqa: E402

# Run in the proxy's process, with `errorproxy run`'s arguments; the threshold in GC_COST_THRESHOLD.
_HOOK = r"""
import atexit, gc, json, os, signal, sys, time, runpy
import proxy.ops.tuning
if os.environ["GC_COST_THRESHOLD"] != "default":
    proxy.ops.tuning.GC_THRESHOLD, proxy.ops.tuning.GC_PER_CONNECTION = int(os.environ["GC_COST_THRESHOLD"]), 0
stats = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
started = [0.0]
serving = [False]

def timed(phase, info):
    if not serving[0]:
        # Start-up, or tune_gc's own collection before it freezes the heap. (Asked only until the
        # answer is yes: get_freeze_count walks every frozen object, a millisecond each time.)
        if gc.get_freeze_count() == 0:
            return
        serving[0] = True
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        stats["collections"][info["generation"]] += 1
        stats["seconds"][info["generation"]] += time.perf_counter() - started[0]

def reset(*_):
    stats["collections"], stats["seconds"] = [0, 0, 0], [0.0, 0.0, 0.0]
    stats["cpu"] = time.process_time()

gc.callbacks.append(timed)
signal.signal(signal.SIGUSR1, reset)
atexit.register(lambda: print("GC_COST " + json.dumps({**stats, "cpu": time.process_time() - stats.get("cpu", 0.0)}),
                              flush=True))
sys.argv = ["errorproxy", *sys.argv[1:]]
runpy.run_module("proxy", run_name="__main__")
"""


def measure(group: Group, python: str, wrk: str, upstream: servers.Server, threshold: str, path: str,
            connections: int, seconds: int) -> dict:
    server = servers.start_errorproxy(group, python, free_port(), upstream, 1, launch=("-c", _HOOK),
                                      env={"GC_COST_THRESHOLD": threshold})
    process = server.process
    url = server.url + path
    subprocess.run([wrk, "-t1", f"-c{connections}", "-d1s", url], capture_output=True, check=True)
    process.popen.send_signal(signal.SIGUSR1)
    result = parse(subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                                  capture_output=True, text=True, check=True).stdout)
    group.stop(process, timeout=10)
    match = re.search(r"GC_COST (.*)", process.log_path.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no GC_COST line from errorproxy:\n{process.log_tail()}")
    stats = json.loads(match.group(1))
    requests = max(result.requests, 1)
    return {
        "threshold": threshold,
        "rps": result.requests / seconds,
        "p99_ms": result.percentiles_ms.get(99.0),
        "collections_per_1000_requests": [round(count * 1000 / requests, 2) for count in stats["collections"]],
        "gc_us_per_request": round(sum(stats["seconds"]) * 1e6 / requests, 2),
        "cpu_us_per_request": round(stats["cpu"] * 1e6 / requests, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/ok", help="what wrk asks for (the bench upstream's paths; default /ok)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--thresholds", default="700,default",
                        help="young-generation thresholds, comma-separated: numbers, or `default` for errorproxy's own")
    args = parser.parse_args(argv)
    thresholds = args.thresholds.split(",")
    wrong = [value for value in thresholds if value != "default" and not value.isdigit()]
    if wrong:
        parser.error(f"--thresholds: {', '.join(wrong)} is neither a number nor `default`")
    nginx, wrk = ensure_tools()
    python = servers.errorproxy_python()
    print(f"{'threshold':>9} {'req/s':>8} {'p99 ms':>7} {'collections /1000 req (gen 0, 1, 2)':>36} "
          f"{'GC µs/req':>9} {'CPU µs/req':>10} {'GC share':>8}")
    with Group() as group:
        upstream = servers.start_upstream(group, nginx, free_port())
        for _ in range(args.rounds):
            for threshold in thresholds:
                row = measure(group, python, wrk, upstream, threshold, args.path, args.connections, args.seconds)
                share = row["gc_us_per_request"] / row["cpu_us_per_request"] if row["cpu_us_per_request"] else 0.0
                p99 = "" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
                print(f"{threshold:>9} {row['rps']:>8,.0f} {p99:>7} {str(row['collections_per_1000_requests']):>36} "
                      f"{row['gc_us_per_request']:>9.2f} {row['cpu_us_per_request']:>10.1f} {share:>8.1%}",
                      flush=True)


if __name__ == "__main__":
    main()
