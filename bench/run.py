"""errorproxy against nginx, same upstream, same machine: `python bench/run.py [--quick]`.

Installs nginx and wrk from Debian's packages when missing (as root), starts an
nginx upstream, then for every case and worker count runs errorproxy and nginx
alternately (and, for the large bodies, nginx with `proxy_buffering off`),
round after round, each freshly started, all on 127.0.0.1. Prints a table and
writes bench/results/latest.json; `--profile DIR` adds py-spy flame graphs of
errorproxy's runs. Everything it started is stopped on exit, Ctrl-C included.
See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, ContextManager

if __package__ in (None, ""):  # run as a script: make `bench` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import flamegraphs, report, servers  # noqa: E402
from bench.cases import CASES, Case, CheckFailed, Load, measure, wrk_seconds  # noqa: E402
from bench.procs import BenchError, Group, ensure_tools, free_port  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="errorproxy/nginx pairs per case (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds of measured load a run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load before each run (default 1)")
    parser.add_argument("--uploads", type=int, default=5, help="100 MiB uploads measured a run (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 round")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--cases", default=",".join(case.name for case in CASES),
                        help="cases to run, comma separated (default: all of %(default)s)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="errorproxy's event loop (ERRORPROXY_LOOP; default uvloop)")
    parser.add_argument("--idle-poll", metavar="DURATION",
                        help="errorproxy's server.idle_poll (default: its own, 200us; 0s: no polling)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file (default bench/results/latest.json)")
    parser.add_argument("--keep-temp", action="store_true", help="keep configs and logs in the temp dir")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write a py-spy flame graph of each errorproxy run's measured load to DIR "
                             "(CASE-Nw.svg; -rK added with several rounds); sampling slows the runs, so "
                             "do not report a profiled run's numbers (needs py-spy: pip install py-spy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2, 1
    by_name = {case.name: case for case in CASES}
    unknown = [name for name in args.cases.split(",") if name not in by_name]
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)} (known: {', '.join(by_name)})")
    if min(args.rounds, args.duration, args.warmup, args.uploads) < 1:
        parser.error("--rounds, --duration, --warmup and --uploads must be at least 1")
    try:
        worker_counts = [int(count) for count in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers takes numbers separated by commas, not {args.workers!r}")
    selected = [by_name[name] for name in args.cases.split(",")]
    load = Load(duration=args.duration, warmup=args.warmup, uploads=args.uploads)

    # SIGTERM unwinds like Ctrl-C, so every process group and the temp dir are cleaned up.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        return _bench(args, selected, worker_counts, load)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp dir removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _bench(args: argparse.Namespace, selected: list[Case], worker_counts: list[int], load: Load) -> int:
    nginx, wrk = ensure_tools()
    python = servers.errorproxy_python()
    has_workers = servers.errorproxy_has_workers(python)
    py_spy = flamegraphs.find_py_spy(python) if args.profile else None
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split("Copyright")[0]
    machine = report.machine(servers.versions(python, nginx), wrk_version.strip())
    settings = {"rounds": args.rounds, "duration_s": load.duration, "warmup_s": load.warmup,
                "uploads": load.uploads, "upload_mib": load.upload_size // servers.MIB,
                "errorproxy_workers_option": has_workers, "errorproxy_loop": args.loop, "errorproxy_idle_poll": args.idle_poll, "quick": args.quick,
                "profiled_to": str(args.profile) if args.profile else None}  # slowed by sampling: not for reporting
    print(f"errorproxy {machine['errorproxy']} (aiohttp {machine['aiohttp']}, uvloop {machine['uvloop']}) vs "
          f"nginx {machine['nginx']}; {machine['cores']} cores, {machine['cpu']}; "
          f"load average {machine['load_average_at_start']}", file=sys.stderr)
    body = bytes(range(256)) * (load.upload_size // 256) if any(case.upload for case in selected) else None
    entries: list[dict] = []
    failures: list[str] = []
    started = time.monotonic()
    with Group(keep=args.keep_temp) as group:
        if args.keep_temp:
            print(f"configs and logs in {group.dir}", file=sys.stderr)
        upstream = servers.start_upstream(group, nginx, free_port())
        certificate = servers.make_certificate(group) if any(case.tls for case in selected) else None
        profiler = flamegraphs.Profiler(group, py_spy, args.profile, args.rounds) if py_spy else None
        for case in selected:
            for workers in worker_counts:
                unavailable = {}
                if workers > 1 and not has_workers:
                    unavailable["errorproxy"] = "`errorproxy run` has no --workers option in this checkout"
                rounds = []
                for number in range(1, args.rounds + 1):
                    label = f"{case.name}-{workers}w round {number}/{args.rounds}"
                    profile = None if profiler is None else profiler.during(
                        f"{case.name}-{workers}w", number, None if case.upload else wrk_seconds(load.duration))
                    run = _round(group, case, workers, upstream, nginx, wrk, python, load, body, unavailable,
                                 label, failures, args.loop, certificate if case.tls else None, profile,
                                 args.idle_poll)
                    rounds.append(run)
                entries.append(report.case_result(case, workers, rounds, unavailable))
                report.write(args.out, machine, {**settings, "failures": failures}, entries)
    print(f"\n{report.table(entries)}")
    print(f"{len(entries)} cases in {time.monotonic() - started:.0f} s; results in {_shown(args.out)}")
    if profiler is not None:
        print(f"{len(profiler.written)} flame graphs of errorproxy in {_shown(args.profile)}: "
              f"{', '.join(path.name for path in profiler.written) or 'none'}\n"
              "profiled: sampling slowed errorproxy's runs, so these numbers are not for reporting")
    if failures:
        print(f"{len(failures)} runs failed:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 1 if failures else 0


def _round(group: Group, case: Case, workers: int, upstream: servers.Server, nginx: str, wrk: str, python: str,
           load: Load, body: bytes | None, unavailable: dict, label: str, failures: list[str], loop: str,
           tls: servers.Certificate | None = None,
           profile: Callable[[servers.Server], ContextManager[None]] | None = None,
           idle_poll: str | None = None) -> dict:
    """One round of a case: the upstream alone (when the case has a baseline), errorproxy, nginx, then
    nginx unbuffered (for the large bodies). `profile` samples errorproxy's measured load; `idle_poll`
    is errorproxy's `server.idle_poll` (None: its default)."""
    run: dict[str, dict | None] = {}
    if case.baseline:
        run["direct"] = _attempt(lambda: measure(case, upstream, upstream, wrk, load, body), label, "direct", failures)
    for proxy in case.proxies:
        if proxy in unavailable:
            continue

        def one(proxy: str = proxy) -> dict:
            if proxy in ("nginx", "nginx_unbuffered"):
                server = servers.start_nginx_proxy(group, nginx, free_port(), upstream, workers, tls,
                                                   buffering=proxy == "nginx")
            else:  # errorproxy, or errorproxy on the `versus_path` (guard-write: the same PUT unguarded)
                server = servers.start_errorproxy(group, python, free_port(), upstream, workers, loop, tls,
                                                  idle_poll=idle_poll)
            measured = case if proxy == "errorproxy" else dataclasses.replace(case, path=case.versus_path or case.path)
            sampling = profile(server) if profile and proxy == "errorproxy" else contextlib.nullcontext()
            try:
                return measure(measured, server, upstream, wrk, load, body, during_load=sampling)
            finally:
                group.stop(server.process)

        run[proxy] = _attempt(one, label, proxy, failures)
    shown = "  ".join(f"{name} {_headline(case, numbers)}" for name, numbers in run.items() if numbers)
    print(f"[{label}] {shown}", file=sys.stderr)
    return run


def _attempt(action, label: str, name: str, failures: list[str]) -> dict | None:
    try:
        return action()
    except (BenchError, CheckFailed, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        failures.append(f"{label} {name}: {exc}")
        print(f"[{label}] {name} FAILED: {exc}", file=sys.stderr)
        return None


def _headline(case: Case, numbers: dict) -> str:
    if case.upload:
        return f"{numbers['mib_s']:.0f} MiB/s"
    if case.connections == 1:
        return f"p50 {numbers['p50_ms']:.3f} ms p99 {numbers['p99_ms']:.3f} ms"
    return f"{numbers['rps']:,.0f} req/s"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
