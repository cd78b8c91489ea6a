"""Processes the benchmark starts, and what /proc says about them.

Every server runs in its own session (so its own process group): stopping it
signals the whole group, workers included, and nothing outlives the harness,
even after Ctrl-C. CPU and memory are read from /proc for a process and all of
its descendants, so multi-worker servers are measured whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class BenchError(Exception):
    """A setup failure the harness reports and stops on (a server that will not start, a tool missing)."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Group:
    """Owns a temporary directory and every process started through it; `close()` stops them all.

    >>> with Group() as group:
    ...     sleeper = group.start("sleep", ["sleep", "60"])
    ...     group.stop(sleeper)
    """

    def __init__(self, keep: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="errorproxy-bench-"))
        self.keep = keep
        self._running: list[Process] = []

    def __enter__(self) -> "Group":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Process:
        log_path = self.dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True)
        process = Process(name, popen, log_path)
        self._running.append(process)
        return process

    def stop(self, process: Process, timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
        if process in self._running:
            self._running.remove(process)
        family = tree(process.pid) if process.popen.poll() is None else []
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while workers linger: the group id outlives it, and a
        # descendant that moved to a group of its own is killed by pid.
        _signal_group(process.pid, signal.SIGKILL)
        for pid in family[1:]:
            if _stat_fields(pid) is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"warning: {process.name} (pid {process.pid}) did not exit", file=sys.stderr)

    def close(self) -> None:
        for process in reversed(list(self._running)):
            self.stop(process)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_context(url: str) -> ssl.SSLContext | None:
    """For https URLs, a context that accepts the bench's own self-signed certificate (127.0.0.1 only)."""
    if not url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_http(process: Process, url: str, *, expect: int = 200, timeout: float = 20.0) -> None:
    """Poll `url` until it answers `expect`; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise BenchError(f"{process.name} exited with {process.popen.returncode}:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=client_context(url)) as response:
                if response.status == expect:
                    return
                last = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            if exc.code == expect:
                return
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise BenchError(f"{process.name} not ready at {url} within {timeout:g}s ({last}):\n{process.log_tail()}")


# /proc readings -----------------------------------------------------------------


def tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now (found by scanning /proc for parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat_fields(int(entry))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...]; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process still alive, in seconds."""
    result = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            result[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # stat fields 14 and 15
    return result


def peak_rss_kib(pids: list[int]) -> dict[int, int]:
    """VmHWM (peak resident set since start) of each process still alive."""
    result = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    result[pid] = int(line.split()[1])
        except OSError:
            pass
    return result


# Tools ---------------------------------------------------------------------------


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((path for path in NGINX_PATHS if os.access(path, os.X_OK)), None)


def ensure_tools() -> tuple[str, str]:
    """Paths of nginx and wrk, installing Debian's packages with apt-get (as root) when missing."""
    nginx, wrk = find_nginx(), shutil.which("wrk")
    missing = [package for package, path in (("nginx", nginx), ("wrk", wrk)) if path is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise BenchError(f"missing {', '.join(missing)}: install them (Debian: apt-get install {' '.join(missing)})")
        _apt_install(missing)
        nginx, wrk = find_nginx(), shutil.which("wrk")
        if nginx is None or wrk is None:
            raise BenchError(f"apt-get installed {', '.join(missing)} but nginx or wrk is still not found")
    return nginx, wrk


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    print(f"installing {' '.join(packages)} with apt-get", file=sys.stderr)
    if subprocess.run(install, env=env).returncode != 0:
        # A fresh container has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(install, env=env).returncode != 0:
            raise BenchError(f"apt-get install {' '.join(packages)} failed")
