"""Fuzz the proxy's request front: `python bench/fuzz_front.py --seconds 60 --seed N`.

Starts a well-behaved aiohttp upstream (in this process) and errorproxy in front of it
(a subprocess, with aiohttp's C request parser, its pure-Python one, or each in turn),
both on 127.0.0.1, then sends generated raw requests (bench/fuzzgen.py) from
`--concurrency` connections at a time. Each answer is judged:

- no 5xx: the upstream never fails, so a 502/504 is no upstream fault and a 500 is the
  proxy's own; 505 (a request line that is not HTTP/1.x) is meant;
- the bytes back are whole HTTP/1.x responses (status lines, headers, framed bodies);
- the proxy closes the connection within `--cap` seconds (its header, body and
  keep-alive timeouts here are a second or less).

At the end, the proxy's log must hold no traceback and no "Unhandled exception", and a
plain GET must still get its 200. Failing cases print with their seed;
`--case SEED` replays one, printing its bytes and the answer.
Exit status: 0 clean, 1 failures found, 2 the fuzz could not run, 130 interrupted.

The cases come from bench/fuzzgen.py, the running and judging from bench/fuzzrun.py;
tests/functional/test_front_fuzz.py runs the same for a few hundred cases per parser.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fuzzgen import generate  # noqa: E402
from bench.fuzzrun import CONFIG, SERVER_LIMITS, Upstream, describe, exchange, judge, log_problems, run, survives  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/fuzz_front.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per parser (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the cases (default 1)")
    parser.add_argument("--parser", choices=["c", "py", "both"], default="both", help="request parser (default both)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections at once (default 16)")
    parser.add_argument("--cap", type=float, default=5.0, help="seconds a connection may stay open (default 5)")
    parser.add_argument("--case", type=int, help="replay the case with this seed, print it and its answer")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.cap <= 0:
        parser.error("--seconds, --concurrency and --cap must be positive")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        failed = False
        for name in (["c", "py"] if args.parser == "both" else [args.parser]):
            failed |= asyncio.run(_fuzz(args, name))
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, temp dir removed", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as exc:
        print(f"fuzz_front: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _fuzz(args: argparse.Namespace, parser_name: str) -> bool:
    """One parser's run; True when something failed."""
    from bench.procs import Group, free_port, wait_http
    from bench.servers import ROOT, errorproxy_python

    upstream = Upstream()
    await upstream.start()
    try:
        with Group() as group, upstream:
            port, admin_port = free_port(), free_port()
            config = group.dir / "errorproxy.yaml"
            config.write_text(CONFIG.format(port=port, admin_port=admin_port, limits=SERVER_LIMITS, upstream=upstream.url))
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith("ERRORPROXY_") and key != "AIOHTTP_NO_EXTENSIONS"}
            env.update(PYTHONUNBUFFERED="1", **({"AIOHTTP_NO_EXTENSIONS": "1"} if parser_name == "py" else {}))
            proxy = group.start("errorproxy", [errorproxy_python(), "-m", "proxy", "run", "--config", str(config)],
                                env=env, cwd=ROOT)
            await asyncio.to_thread(wait_http, proxy, f"http://127.0.0.1:{admin_port}/readyz")
            if args.case is not None:
                case = generate(args.case)
                outcome = judge(case, *await exchange(port, case, args.cap))
                print(f"{parser_name} parser: {describe(outcome, 10**6)}\n  statuses {outcome.statuses}")
                return bool(outcome.failures)
            report = await run(port, args.seed, seconds=args.seconds, concurrency=args.concurrency, cap=args.cap)
            after = await survives(port)
            group.stop(proxy)  # before reading its log: a traceback at shutdown counts too
            problems = log_problems(proxy.log_path.read_text(errors="replace"))
    finally:
        await upstream.stop()
    print(f"{parser_name} parser: {report.summary()}")
    for outcome in report.failed[:20]:
        print(describe(outcome))
    if problems:
        print(f"{len(problems)} log lines with an unhandled exception, the first: {problems[0][:300]}")
    if upstream.failures:
        print(f"the upstream failed {len(upstream.failures)} times, the first: {upstream.failures[0]}")
    survived = after.startswith(b"HTTP/1.1 200 ")
    status_line = after.partition(b"\r\n")[0].decode("latin-1")
    print(f"a plain GET afterwards: {status_line or 'no answer'}")
    return bool(report.failed or problems or upstream.failures or not survived)


if __name__ == "__main__":
    sys.exit(main())
