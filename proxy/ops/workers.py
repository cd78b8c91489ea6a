"""`errorproxy run --workers N`: N worker processes on one port, and their supervisor.

    supervisor (this module; no event loop, no proxying)
     ├─ picks the ports (a listen or admin port of 0 becomes one free port for all)
     ├─ worker: `python -m proxy run --listen HOST:PORT` with SO_REUSEPORT; the kernel
     ├─ worker:  spreads new connections over the workers' listening sockets
     ├─ restarts a worker that dies, with a backoff; gives up on a crash loop
     ├─ forwards SIGHUP (each worker reloads) and SIGTERM/SIGINT (each drains)
     ├─ owns PROMETHEUS_MULTIPROC_DIR, so any worker's /metrics is the sum of all
     └─ gives the workers one ERRORPROXY_STATE_DIR (its own, unless one is set), so a maintenance
        switch thrown on any worker's admin listener holds on every worker

Why not gunicorn: its workers serve an `Application` on a socket gunicorn owns,
while this proxy runs aiohttp's low-level `web.Server` with its own connection
class, limits, SIGHUP reload and drain; each worker here is exactly the
single-process server, so there is one code path to test. A worker is a fresh
interpreter (not a fork), so prometheus_client reads PROMETHEUS_MULTIPROC_DIR
before its first import.

A restarted worker reads the config file as it is at that moment: if the file
has been broken since, the worker cannot start, and after CRASH_LIMIT tries the
supervisor stops every worker and exits 1 rather than serve on fewer workers.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Mapping

from ..config.source import Source
from .reload import load, restart_needed
from ..core.maintenance import STATE_DIR
from ..core.settings import Address, Settings

log = logging.getLogger("errorproxy.workers")

MAX_WORKERS = 64
READY_FD = "ERRORPROXY_WORKER_READY_FD"  # set for workers only: where a worker says it is listening
START_TIMEOUT = 30.0  # seconds for every first worker to listen
CRASH_WINDOW = 60.0  # seconds over which a worker's exits count as one crash loop
CRASH_LIMIT = 5  # exits within CRASH_WINDOW that make the supervisor give up
FIRST_BACKOFF = 0.2  # seconds before the first restart, doubled for each further one in the window
_TICK = 0.05  # seconds between looks at signals and children


@dataclass
class WorkerLink:
    """A worker's side of the supervisor's pipe."""

    fd: int

    def ready(self, addresses: list[str]) -> None:
        os.write(self.fd, (" ".join(addresses) + "\n").encode())
        os.close(self.fd)


def worker_link(env: Mapping[str, str]) -> WorkerLink | None:
    """The link to the supervisor when this process is a worker, else None."""
    fd = env.get(READY_FD)
    return WorkerLink(int(fd)) if fd and fd.isdigit() else None


@dataclass
class _Worker:
    """One worker slot: the process in it now, and the exits it has had."""

    number: int
    process: subprocess.Popen | None = None
    pipe: int | None = None  # read end of the ready pipe, until the worker writes or dies
    ready: bool = False
    hup_pending: bool = False  # SIGHUP before its handler was installed: sent once ready
    restart_at: float | None = None
    exits: collections.deque = field(default_factory=collections.deque)


class Supervisor:
    def __init__(self, source: Source, settings: Settings, workers: int) -> None:
        self.source = source
        self.settings = settings
        self.slots = [_Worker(number) for number in range(1, workers + 1)]
        self._signals: list[int] = []
        self._reserved: list[socket.socket] = []
        self._listen = settings.listen
        self._admin = settings.ops.admin
        self._metrics_dir = ""
        self._state_dir = ""  # made here, so removed here; a directory given in the environment is kept
        self._env: dict[str, str] = {}

    def run(self) -> int:
        """Run the workers until SIGTERM/SIGINT; the exit status (0: every worker drained and exited)."""
        previous = {signum: signal.signal(signum, self._on_signal)
                    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            self._listen = self._reserve(self._listen, str(self._listen))
            if self._admin is not None:
                self._admin = self._reserve(self._admin, f"admin {self._admin}")
            self._metrics_dir = tempfile.mkdtemp(prefix="errorproxy-metrics-")
            state_dir = self.source.env.get(STATE_DIR) or None
            if state_dir is None:
                self._state_dir = state_dir = tempfile.mkdtemp(prefix="errorproxy-state-")
            self._env = {
                **self.source.env,
                "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir,
                STATE_DIR: state_dir,
                "ERRORPROXY_WORKERS": "1",
                "ERRORPROXY_ADMIN": str(self._admin) if self._admin is not None else "off",
            }
            for slot in self.slots:
                self._start(slot)
            if not self._supervise():
                return 1
            return 0 if self._stop() else 1
        finally:
            self._stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in self._reserved:
                sock.close()
            for directory in (self._metrics_dir, self._state_dir):
                if directory:
                    shutil.rmtree(directory, ignore_errors=True)

    def _on_signal(self, signum: int, frame) -> None:
        self._signals.append(signum)

    def _supervise(self) -> bool:
        """Until a stop signal (True), or a start or crash loop that failed (False)."""
        started = time.monotonic()
        announced = False
        while True:
            while self._signals:
                signum = self._signals.pop(0)
                if signum != signal.SIGHUP:
                    log.info("stopping: %s to %d workers", signal.Signals(signum).name, len(self.slots))
                    return True
                self._hup()
            self._wait_ready(_TICK)
            if not announced and all(slot.ready for slot in self.slots):
                announced = True
                scheme = "https" if self.settings.tls is not None else "http"
                log.info("errorproxy listening on %s (%d workers, pids %s, config %s)", self._listen.url(scheme),
                         len(self.slots), " ".join(str(slot.process.pid) for slot in self.slots if slot.process),
                         self.settings.source)
                if self._admin is not None:
                    # Any worker answers there, and its /metrics sums every worker's.
                    log.info("admin listening on %s", self._admin.url())
            elif not announced and time.monotonic() - started > START_TIMEOUT:
                log.error("workers did not start listening within %ss", START_TIMEOUT)
                return False
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    if not self._exited(slot, now):
                        return False
                if slot.restart_at is not None and now >= slot.restart_at:
                    self._start(slot)

    def _start(self, slot: _Worker) -> None:
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "proxy", "run", "--listen", str(self._listen)]
        if self.source.config:
            command += ["--config", self.source.config]
        if self.source.upstream:
            command += ["--upstream", self.source.upstream]
        try:
            slot.process = subprocess.Popen(
                command, env={**self._env, READY_FD: str(write_end)}, pass_fds=(write_end,),
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(write_end)
        slot.pipe, slot.ready, slot.restart_at = read_end, False, None
        log.info("worker %d started: pid %d", slot.number, slot.process.pid)

    def _wait_ready(self, timeout: float) -> None:
        """Wait up to `timeout` for a worker to say it listens (also the supervisor's sleep)."""
        pipes = {slot.pipe: slot for slot in self.slots if slot.pipe is not None}
        if not pipes:
            time.sleep(timeout)
            return
        for fd in select.select(list(pipes), [], [], timeout)[0]:
            slot = pipes[fd]
            data = os.read(fd, 4096)
            os.close(fd)
            slot.pipe = None
            if data and slot.process is not None:
                slot.ready = True
                if slot.hup_pending:
                    slot.hup_pending = False
                    slot.process.send_signal(signal.SIGHUP)

    def _exited(self, slot: _Worker, now: float) -> bool:
        """Schedule the restart of a worker that died; False when it is a crash loop."""
        process = slot.process
        assert process is not None
        _forget(process.pid, self._metrics_dir)
        if slot.pipe is not None:
            os.close(slot.pipe)
        slot.process, slot.pipe, slot.ready, slot.hup_pending = None, None, False, False
        how = f"signal {signal.Signals(-process.returncode).name}" if process.returncode < 0 else f"status {process.returncode}"
        slot.exits.append(now)
        while slot.exits and slot.exits[0] < now - CRASH_WINDOW:
            slot.exits.popleft()
        if len(slot.exits) >= CRASH_LIMIT:
            log.error("worker %d (pid %d) exited with %s, %d exits within %gs: a crash loop; giving up",
                      slot.number, process.pid, how, len(slot.exits), CRASH_WINDOW)
            return False
        delay = FIRST_BACKOFF * 2 ** (len(slot.exits) - 1)
        log.error("worker %d (pid %d) exited with %s; restarting it in %.1fs", slot.number, process.pid, how, delay)
        slot.restart_at = now + delay
        return True

    def _hup(self) -> None:
        """Forward SIGHUP; a `listen` or `admin` change is reported here, as workers are told their ports."""
        log.info("reloading: SIGHUP to %d workers", len(self.slots))
        for slot in self.slots:
            if slot.process is None:
                continue  # restarting: it reads the config when it starts
            if slot.ready:
                slot.process.send_signal(signal.SIGHUP)
            else:
                slot.hup_pending = True
        try:
            for warning in restart_needed(self.settings, load(self.source)[0], server=False):
                log.warning("%s", warning)
        except Exception:  # noqa: BLE001 - each worker loads the file itself and reports its problems
            pass

    def _stop(self) -> bool:
        """SIGTERM every worker and wait for them to drain; whether all exited in time."""
        live = [slot for slot in self.slots if slot.process is not None]
        for slot in live:
            if slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)
        server = self.settings.server
        deadline = time.monotonic() + server.stop_delay + server.shutdown_timeout + 10
        clean = True
        for slot in live:
            process = slot.process
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time: killed", slot.number, process.pid)
                process.kill()
                process.wait()
                clean = False
            _forget(process.pid, self._metrics_dir)
            if slot.pipe is not None:
                os.close(slot.pipe)
            slot.process, slot.pipe = None, None
        if live:
            log.info("stopped %d workers", len(live))
        return clean

    def _reserve(self, address: Address, name: str) -> Address:
        """Bind (not listen) the address with SO_REUSEPORT: the port is the workers' alone, and known.

        A bound socket that does not listen gets no connections; it keeps the
        port while every worker restarts, and turns port 0 into a concrete port.
        """
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            exc.address = name  # type: ignore[attr-defined]  # for the command line's message
            raise
        self._reserved.append(sock)
        return Address(address.host, sock.getsockname()[1])



def _forget(pid: int, metrics_dir: str) -> None:
    """A dead worker's live gauges go; its counters stay in the sums, as counters must."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM (a graceful drain) if the supervisor dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
