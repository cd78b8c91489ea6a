"""Instructions errorproxy executes a request, counted by valgrind's callgrind: exact from run to run.

    python bench/instructions.py                            # this checkout, /ok at concurrency 1
    python bench/instructions.py --connections 20 ../main .  # two checkouts, side by side

Timings on a shared machine move by 10 to 20%, so a change worth 2% cannot
be seen in them; a count of instructions moves by well under 1% and can.
errorproxy (one process, the bench's config, the checkout's own code) runs
under callgrind in front of the bench's nginx upstream; wrk loads it for a
warm-up, then counting is switched on (`callgrind_control -i on`) for
`--seconds` of load and dumped (`-d`), and the instructions counted are
divided by the requests wrk completed. At concurrency 1 every request takes its own turns
of the event loop, so the count is the whole path of one request; with more
connections a turn's own work is shared by the requests in it.

The count says nothing of system calls, nor of cache misses: confirm a change
with `python bench/run.py`. Needs valgrind (Debian: apt-get install valgrind);
the proxy runs some fifty times slower under it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import servers  # noqa: E402
from bench.procs import BenchError, Group, ensure_tools, free_port  # noqa: E402
from bench.wrkparse import parse  # noqa: E402


def instructions(summary: str) -> int:
    """The instruction count in a callgrind output file's `summary:` (or `totals:`) line.

    >>> instructions("events: Ir\\nsummary: 1234\\n")
    1234
    """
    for line in summary.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError("no summary line in callgrind's output")


def measure(group: Group, python: str, wrk: str, upstream: servers.Server, checkout: Path, path: str,
            connections: int, seconds: int) -> tuple[int, int]:
    """(instructions, requests) of `seconds` of wrk load on errorproxy from `checkout`, under callgrind."""
    out = group.dir / f"callgrind-{free_port()}.out"
    # Idle polling off where the checkout has it: its turns are no part of a request's path, and their
    # number follows the wall clock, which callgrind slows fifty times.
    polls = "idle_poll" in (checkout / "proxy" / "core" / "settings.py").read_text()
    server = servers.start_errorproxy(
        group, "valgrind", free_port(), upstream, 1, root=checkout, idle_poll="0s" if polls else None,
        launch=("--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", python, "-m", "proxy"))
    pid = str(server.process.pid)
    url = server.url + path
    subprocess.run([wrk, "-t1", f"-c{connections}", "-d2s", url], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
    result = parse(subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                                  capture_output=True, text=True, check=True).stdout)
    subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=True)  # to `out`.1
    dumped = out.with_name(out.name + ".1")
    deadline = time.monotonic() + 30
    while not (dumped.is_file() and "\ntotals:" in dumped.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    group.stop(server.process, timeout=30)
    return instructions(dumped.read_text()), result.requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[servers.ROOT],
                        help="errorproxy checkouts to measure, in turn (default: this one)")
    parser.add_argument("--path", default="/ok", help="what wrk asks for (the bench upstream's paths; default /ok)")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args(argv)
    for checkout in args.checkouts:
        if not (checkout / "proxy" / "__main__.py").is_file():
            parser.error(f"{checkout} is not an errorproxy checkout (no proxy/__main__.py)")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind and callgrind_control (Debian: apt-get install valgrind)")
    nginx, wrk = ensure_tools()
    python = servers.errorproxy_python()
    print(f"{'checkout':<40} {'requests':>9} {'instructions/request':>21}")
    with Group() as group:
        upstream = servers.start_upstream(group, nginx, free_port())
        for checkout in args.checkouts:
            counted, requests = measure(group, python, wrk, upstream, checkout.resolve(), args.path,
                                        args.connections, args.seconds)
            print(f"{str(checkout):<40} {requests:>9,} {counted / max(requests, 1):>21,.0f}", flush=True)


if __name__ == "__main__":
    main()
