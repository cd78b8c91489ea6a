"""Soak test: errorproxy under mixed traffic and upstream restarts: `python bench/soak.py --minutes 10`.

Starts an aiohttp upstream (bench/soak_upstream.py) and errorproxy in front of
it, both on 127.0.0.1, then for `--minutes` sends a mix of requests from
`--concurrency` client loops (bench/soak_traffic.py) while the upstream is
killed and restarted on the same port every `--restart-every` seconds. Every
`--sample-every` seconds it reads the proxy's RSS, open fds and upstream
connections from /proc (bench/soak_probe.py) and the window's latencies and
outcomes. Writes bench/results/soak.json and prints a table with the verdict
(bench/soak_verdict.py says when memory, fds and connections count as flat).
Everything it started is stopped on exit, Ctrl-C included.

Exit status: 0 flat, 1 not flat, 2 the soak could not run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from bench import soak_probe, soak_rig, soak_verdict  # noqa: E402
from bench.procs import BenchError, Group  # noqa: E402
from bench.servers import ROOT  # noqa: E402
from bench.soak_rig import Rig  # noqa: E402
from bench.soak_traffic import MIX, Traffic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of traffic (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once (default 32)")
    parser.add_argument("--restart-every", type=float, default=60.0,
                        help="seconds between upstream kills and restarts; 0 for none (default 60)")
    parser.add_argument("--down", type=float, default=1.0,
                        help="seconds the killed upstream stays down before it is started again (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="errorproxy worker processes (default 1)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the request mix (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file (default bench/results/soak.json)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the config and logs in the temp dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.concurrency < 1 or args.workers < 1 or args.sample_every <= 0 or \
            args.restart_every < 0 or args.down < 0:
        parser.error("--minutes, --concurrency, --workers and --sample-every must be positive; "
                     "--restart-every and --down at least 0")
    # SIGTERM unwinds like Ctrl-C, so every process group and the temp dir are cleaned up.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        with Group(keep=args.keep_temp) as group:
            if args.keep_temp:
                print(f"config and logs in {group.dir}", file=sys.stderr)
            rig = soak_rig.start(group, args.workers)
            config = _config(args, rig.python)
            run = asyncio.run(_soak(rig, args))
            group.stop(rig.proxy)  # before reading its log: a traceback at shutdown counts too
            tracebacks, excerpts = soak_verdict.tracebacks(rig.proxy.log_path.read_text(errors="replace"))
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp dir removed", file=sys.stderr)
        return 130
    except (BenchError, OSError, subprocess.CalledProcessError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    tally = run["tally"]
    summary = soak_verdict.summarize(run["samples"], run["restarts"], tally.totals, tally.all_ms)
    summary.update(by_kind=tally.by_kind, unexpected_examples=tally.examples, upstream_errors=run["upstream_errors"],
                   tracebacks=tracebacks, traceback_excerpts=excerpts, healthy_at_end=run["healthy"])
    verdict = soak_verdict.verdict(run["samples"], run["restarts"], run["quiet_start"], run["quiet_end"],
                                   tally.totals, tracebacks, args.concurrency, args.minutes * 60)
    result = {"config": config, "samples": run["samples"], "restarts": run["restarts"],
              "quiet_start": run["quiet_start"], "quiet_end": run["quiet_end"], "summary": summary, "verdict": verdict}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{soak_verdict.table(run['samples'], summary, verdict)}\nresults in {args.out}")
    return 0 if verdict["flat"] else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _soak(rig: Rig, args: argparse.Namespace) -> dict:
    timeout = aiohttp.ClientTimeout(total=30, sock_connect=5)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as admin:
        await _preflight(rig, timeout)
        await asyncio.sleep(1.0)
        quiet_start = _quiet(soak_probe.read(rig.proxy.pid, rig.upstream_port), 0.0)

        origin = time.monotonic()
        deadline = origin + args.minutes * 60
        restarts: list[dict] = []
        traffic = Traffic(rig.url, args.concurrency, args.seed, restarts, origin)
        samples: list[dict] = []
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout)
        try:
            running = asyncio.ensure_future(traffic.run(session, deadline))
            restarting = asyncio.ensure_future(soak_rig.restart_upstream(
                rig, admin, restarts, origin, deadline, args.restart_every, args.down))
            try:
                while not running.done():
                    tick = origin + (len(samples) + 1) * args.sample_every
                    watched = {running} if restarting.done() else {running, restarting}
                    await asyncio.wait(watched, timeout=max(0.0, tick - time.monotonic()),
                                       return_when=asyncio.FIRST_COMPLETED)
                    if restarting.done():
                        restarting.result()  # an upstream that would not come back stops the soak
                    if not running.done() and time.monotonic() >= tick:
                        samples.append(await _sample(rig, admin, traffic, restarts, origin))
                await running
                await restarting
            finally:
                for task in (running, restarting):
                    task.cancel()
            samples.append(await _sample(rig, admin, traffic, restarts, origin))  # the end of the traffic
        finally:
            await session.close()
        quiet_end = await _quiet_end(rig, quiet_start)
        healthy = await soak_rig.healthy(admin, f"{rig.admin}/healthz")
        metrics = await _metrics(admin, rig)
    return {"samples": samples, "restarts": restarts, "quiet_start": quiet_start, "quiet_end": quiet_end,
            "tally": traffic.tally, "upstream_errors": metrics, "healthy": healthy}


async def _preflight(rig: Rig, timeout: aiohttp.ClientTimeout) -> None:
    """One request of each kind, which must get its expected answer: a broken setup fails here, not in minute 9."""
    probe = Traffic(rig.url, 1, 0, [], time.monotonic())
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for kind in MIX:
            if await probe.one(session, kind) == "unexpected":
                raise BenchError(f"preflight: {kind} got an unexpected answer: {probe.tally.examples[-1]}\n"
                                 f"{rig.proxy.log_tail()}")


async def _metrics(session: aiohttp.ClientSession, rig: Rig) -> dict[str, int] | None:
    try:
        async with session.get(f"{rig.admin}/metrics") as response:
            return soak_probe.upstream_errors(await response.text())
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return None


async def _sample(rig: Rig, admin: aiohttp.ClientSession, traffic: Traffic, restarts: list[dict],
                  origin: float) -> dict:
    reading = soak_probe.read(rig.proxy.pid, rig.upstream_port)
    counts, latencies = traffic.tally.take_window()
    p50, p99 = soak_verdict.percentile(latencies, 50), soak_verdict.percentile(latencies, 99)
    sample = {"t": round(time.monotonic() - origin, 1), "rss_mib": round(reading.rss_kib / 1024, 1),
              "rss_max_mib": round(reading.rss_max_kib / 1024, 1), "fds": reading.fds,
              "upstream_conns": reading.upstream.get("ESTABLISHED", 0),
              "upstream_close_wait": reading.upstream.get("CLOSE_WAIT", 0), "upstream_sockets": reading.upstream,
              "pids": list(reading.pids), "requests": counts,
              "latency_ms": {"p50": _round(p50), "p99": _round(p99), "n": len(latencies)},
              "restarts": len(restarts), "upstream_errors": await _metrics(admin, rig)}
    print(f"[{sample['t']:.0f} s] RSS {sample['rss_mib']} MiB, {sample['fds']} fds, {sample['upstream_conns']} "
          f"upstream conns ({sample['upstream_close_wait']} CLOSE_WAIT), p50 {_round(p50)} ms, p99 {_round(p99)} ms, "
          f"{counts}", file=sys.stderr)
    return sample


def _quiet(reading: soak_probe.Reading, waited: float) -> dict:
    return {"fds": reading.fds, "upstream_conns": reading.upstream.get("ESTABLISHED", 0),
            "upstream_close_wait": reading.upstream.get("CLOSE_WAIT", 0), "rss_mib": round(reading.rss_kib / 1024, 1),
            "waited_s": round(waited, 1)}


async def _quiet_end(rig: Rig, quiet_start: dict) -> dict:
    """The proxy once the client has gone: polled until it holds no more than before the traffic, or QUIET_WAIT s."""
    started = time.monotonic()
    own_start = quiet_start["fds"] - quiet_start["upstream_conns"]
    while True:
        quiet = _quiet(soak_probe.read(rig.proxy.pid, rig.upstream_port), time.monotonic() - started)
        settled = quiet["upstream_close_wait"] == 0 and \
            quiet["fds"] - quiet["upstream_conns"] <= own_start + soak_verdict.QUIET_SLACK_FDS
        if settled or time.monotonic() - started >= soak_verdict.QUIET_WAIT:
            return quiet
        await asyncio.sleep(0.5)


def _config(args: argparse.Namespace, python: str) -> dict:
    probe = "import platform, aiohttp; print(platform.python_version(), aiohttp.__version__)"
    python_version, aiohttp_version = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                                     check=True).stdout.split()
    return {"minutes": args.minutes, "concurrency": args.concurrency, "restart_every_s": args.restart_every,
            "down_s": args.down, "workers": args.workers, "sample_every_s": args.sample_every, "seed": args.seed,
            "mix": MIX, "commit": _git("rev-parse", "--short", "HEAD"),
            "proxy_modified": bool(_git("status", "--porcelain", "--", "proxy")),
            "machine": {"nproc": os.cpu_count(), "python": python_version, "aiohttp": aiohttp_version,
                        "kernel": platform.release(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}


def _git(*args: str) -> str | None:
    try:
        # No optional locks: never refresh the index under a concurrent git command.
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    sys.exit(main())
