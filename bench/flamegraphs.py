"""Flame graphs of errorproxy under a benchmark's load, recorded by py-spy (`run.py --profile DIR`).

py-spy reads the interpreter's stacks from outside the process, 250 times a
second, with the native frames between them (`--native`: uvloop, the C parsers,
the socket calls). It samples only the measured load, not the warm-up, and only
errorproxy's runs: the process that serves with one worker, the supervisor and
its workers (`--subprocesses`) with more. It pauses the process for each sample,
so a profiled run's numbers are slower than an unprofiled one's: they are for
finding where the time goes, not for reporting.

py-spy is not one of errorproxy's dependencies: `pip install py-spy`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from .procs import BenchError, Group, Process
from .servers import Server

RATE = 250  # samples a second
START_TIMEOUT = 20.0  # seconds for py-spy to attach and say it is sampling
FINISH_TIMEOUT = 30.0  # seconds for py-spy to end its --duration (or stop when told) and write the SVG


def find_py_spy(python: str) -> str:
    """py-spy next to errorproxy's Python or this one (a venv's bin/), else on PATH."""
    for bin_dir in (Path(python).parent, Path(sys.executable).parent):
        if os.access(bin_dir / "py-spy", os.X_OK):
            return str(bin_dir / "py-spy")
    found = shutil.which("py-spy")
    if found is None:
        raise BenchError(f"--profile needs py-spy, which is not installed: {python} -m pip install py-spy")
    return found


class Profiler:
    """Records a flame graph of each profiled run into `out_dir`; `written` lists them, in order.

    One round: `ok-1w.svg`; several: `ok-1w-r1.svg`, `ok-1w-r2.svg`, ... An SVG
    of the same name from an earlier run is replaced.
    """

    def __init__(self, group: Group, py_spy: str, out_dir: Path, rounds: int) -> None:
        self.group = group
        self.py_spy = py_spy
        self.out_dir = out_dir
        self.rounds = rounds
        self.written: list[Path] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    def during(self, name: str, number: int, seconds: int | None) -> Callable[[Server], ContextManager[None]]:
        """What samples run `name` (ok-1w) of round `number` once its server is up; see `record`."""
        svg = self.out_dir / (f"{name}.svg" if self.rounds == 1 else f"{name}-r{number}.svg")
        return lambda server: self.record(server, svg, seconds)

    @contextlib.contextmanager
    def record(self, server: Server, svg: Path, seconds: int | None) -> Iterator[None]:
        """Sample `server` while the body runs: for `seconds` (the length of the load), else until it ends.

        The body starts once py-spy has attached and is sampling. When the body
        fails, py-spy is stopped and no SVG is kept.
        """
        argv = [self.py_spy, "record", "--native", "--rate", str(RATE), "--format", "flamegraph",
                "-o", str(svg), "--pid", str(server.process.pid)]
        if seconds is not None:
            argv += ["--duration", str(seconds)]
        if server.workers > 1:  # the pid is the supervisor's; the workers serving are its children
            argv.append("--subprocesses")
        svg.unlink(missing_ok=True)
        process = self.group.start(f"py-spy-{svg.stem}", argv)
        try:
            _wait_sampling(process)
            yield
        except BaseException:
            self.group.stop(process)
            svg.unlink(missing_ok=True)
            raise
        self._finish(process, svg, interrupt=seconds is None)

    def _finish(self, process: Process, svg: Path, interrupt: bool) -> None:
        if interrupt:
            os.kill(process.pid, signal.SIGINT)  # py-spy writes what it sampled when interrupted
        try:
            process.popen.wait(timeout=FINISH_TIMEOUT)
        except subprocess.TimeoutExpired:  # still sampling well past its --duration: cut it short
            os.kill(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=FINISH_TIMEOUT)
        self.group.stop(process)
        if svg.exists():
            self.written.append(svg)
        else:
            print(f"warning: py-spy wrote no {svg}:\n{process.log_tail()}", file=sys.stderr)


def _wait_sampling(process: Process) -> None:
    """Wait for py-spy's "Sampling process ..." line; fail with its output when it exits or stalls."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if "Sampling process" in process.log_path.read_text(errors="replace"):
                return
        except OSError:
            pass
        if process.popen.poll() is not None:
            # Attaching needs ptrace rights: root, CAP_SYS_PTRACE, or kernel.yama.ptrace_scope 0.
            raise BenchError(f"py-spy exited with {process.popen.returncode} before sampling:\n{process.log_tail()}")
        time.sleep(0.05)
    raise BenchError(f"py-spy did not start sampling within {START_TIMEOUT:g}s:\n{process.log_tail()}")
