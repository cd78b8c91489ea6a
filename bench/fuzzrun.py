"""Running the request-front fuzz: the upstream, one case's exchange and verdict, a run's report.

Used by bench/fuzz_front.py (the command) and tests/functional/test_front_fuzz.py; the
cases come from bench/fuzzgen.py. A case fails on any 5xx but 505 (the upstream here never
fails, so no 502 or 504 is an upstream fault), on bytes back that are not whole HTTP/1.x
responses, and on a connection the proxy keeps open past the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod

from .fuzzgen import Case, generate, statuses

# Short client-side limits, so every connection the proxy keeps open ends within a second or so.
SERVER_LIMITS = """\
server:
  header_timeout: 1s
  keepalive_timeout: 1s
  body_timeout: 1s
  lingering_time: 0s
"""
CONFIG = """\
listen: 127.0.0.1:{port}
admin: 127.0.0.1:{admin_port}
{limits}upstreams:
  app:
    url: {upstream}
routes:
  - name: all
    match: {{path_prefix: /}}
    upstream: app
"""
NORMAL_REQUEST = b"GET /after-the-fuzz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
LOG_MARKERS = ("Traceback", "Unhandled exception")


# --- The upstream: answers everything, never fails ------------------------------------------------

class Upstream:
    """An aiohttp low-level server answering any request with 200 once its body is read,
    and a WebSocket handshake with 101 (then a close).

    A body aiohttp cannot read is aiohttp's 400; anything else that goes wrong here is
    kept in `failures`, since the proxy may only blame the upstream for a real fault.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.requests = 0
        self._runner: web.ServerRunner | None = None
        self.url = ""
        self._log = _Record(self.failures)

    def __enter__(self) -> "Upstream":
        # aiohttp logs what it could not parse: bytes the proxy sent that are no request.
        logging.getLogger("aiohttp.server").addHandler(self._log)
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger("aiohttp.server").removeHandler(self._log)

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.requests += 1
        if request.headers.get("Upgrade", "").lower() == "websocket":
            socket_ = web.WebSocketResponse()
            await socket_.prepare(request)  # a handshake it cannot take is aiohttp's 400
            await socket_.close()
            return socket_
        try:
            body = await request.read()
        except (web.HTTPException, ConnectionError):
            # aiohttp's own 400 for a body it cannot read; or the proxy gave up on the request
            # (its client went away or stalled) and closed the connection.
            raise
        except Exception as exc:  # noqa: BLE001 - recorded: the test judges it
            self.failures.append(f"{request.method} {request.raw_path[:80]}: {type(exc).__name__}: {exc}")
            raise
        return web.Response(text=f"{request.method} {len(body)}\n")

    async def start(self) -> None:
        # A connection the proxy closes cancels its handler (no "Connection lost" traceback to read
        # past); a body is read as sent (a client's `Content-Encoding: br` is for the app, not a fault).
        server = web.Server(self.handle, handler_cancellation=True, auto_decompress=False)
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _Record(logging.Handler):
    """aiohttp's errors as one line each, but for a method llhttp does not know.

    Methods are extensible (RFC 9110 §9.1: any token), and the Python parser forwards
    one it has not heard of, as it should; llhttp, parsing here, knows a fixed list.
    """

    _EXTENSION_METHOD = re.compile(r"b'[!#$%&*+\-.^_`|~0-9A-Za-z]+ ")  # a token, then the target

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        text = " ".join(str(error).split())
        if isinstance(error, BadHttpMethod) and self._EXTENSION_METHOD.search(text):
            return
        self.into.append(f"aiohttp: {record.getMessage()}: {type(error).__name__}: {text[:200]}")


# --- One case: send, read, judge ------------------------------------------------------------------

@dataclass
class Outcome:
    case: Case
    answer: bytes
    closed: bool  # the proxy closed the connection within the cap
    statuses: list[int]
    failures: list[str]


async def exchange(port: int, case: Case, cap: float, pause: float = 0.005) -> tuple[bytes, bool]:
    """Write `case` to the proxy, then read until it closes; what came back and whether it closed in `cap`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        try:
            while chunk := await reader.read(65536):
                received.extend(chunk)
        except ConnectionError:
            pass

    async def write_all() -> None:
        try:
            for index, part in enumerate(case.parts):
                if index:
                    await asyncio.sleep(pause)  # a separate read on the proxy's side, most often
                writer.write(part)
                await writer.drain()
        except ConnectionError:
            pass  # the proxy answered and closed before reading it all: what it sent is judged

    reading = asyncio.ensure_future(read_all())
    try:
        await asyncio.wait_for(write_all(), cap)
        if case.ending != "read":
            if case.ending == "abort" and not writer.transport.is_closing():  # a reset, not a FIN
                with contextlib.suppress(OSError):  # the proxy closed first
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            return bytes(received), True
        await asyncio.wait_for(asyncio.shield(reading), cap)
        return bytes(received), True
    except asyncio.TimeoutError:
        return bytes(received), False
    finally:
        reading.cancel()
        writer.close()


def judge(case: Case, answer: bytes, closed: bool) -> Outcome:
    found, garbled = statuses(answer)
    # 5xx is the proxy failing, but for the two that answer the client's own request: a transfer
    # coding other than chunked (501) and an HTTP version other than 1.x (505).
    failures = [f"status {status}" for status in found if status >= 500 and status not in (501, 505)]
    if case.ending == "read":
        if garbled is not None:
            failures.append(f"garbled answer: {garbled}")
        if not closed:
            failures.append("the proxy kept the connection open past the cap")
    return Outcome(case, answer, closed, found, failures)


@dataclass
class Report:
    seed: int
    cases: int = 0
    answers: int = 0
    statuses: Counter = field(default_factory=Counter)
    unanswered: int = 0  # read to the end, but no response at all (a cut request, an early 400 lost to a reset)
    failed: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.cases += 1
        self.answers += len(outcome.statuses)
        self.statuses.update(outcome.statuses)
        self.unanswered += outcome.case.ending == "read" and not outcome.statuses
        if outcome.failures:
            self.failed.append(outcome)

    def summary(self) -> str:
        by_status = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (f"seed {self.seed}: {self.cases} cases in {self.seconds:.1f}s, {self.answers} responses "
                f"({by_status}), {self.unanswered} connections unanswered, {len(self.failed)} failed")


def describe(outcome: Outcome, limit: int = 1500) -> str:
    """A failed case, enough to replay it: its seed, why it failed, what was sent and what came back."""
    case = outcome.case
    return (f"case {case.seed} ({case.pipelined} request(s), {len(case.parts)} part(s), ends with {case.ending}): "
            f"{'; '.join(outcome.failures)}\n  sent {case.data[:limit]!r}\n  got  {outcome.answer[:limit]!r}\n"
            f"  replay: python bench/fuzz_front.py --case {case.seed}")


async def run(port: int, seed: int, *, count: int | None = None, seconds: float = 60.0,
              concurrency: int = 8, cap: float = 5.0) -> Report:
    """`count` cases (or as many as `seconds` allows), each seeded from `random.Random(seed)`."""
    seeds = random.Random(seed)
    report = Report(seed)
    started = time.monotonic()
    deadline = started + seconds
    issued = 0

    async def client() -> None:
        nonlocal issued
        while (count is None or issued < count) and time.monotonic() < deadline:
            issued += 1
            case_seed = seeds.getrandbits(32)
            case = generate(case_seed)
            answer, closed = await exchange(port, case, cap)
            report.add(judge(case, answer, closed))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    report.seconds = time.monotonic() - started
    return report


async def survives(port: int) -> bytes:
    """The answer to a plain GET: its status line should say 200."""
    answer, _ = await exchange(port, Case(0, (NORMAL_REQUEST,)), cap=5.0)
    return answer


def log_problems(log: str) -> list[str]:
    """The proxy log's lines that show an exception nobody handled."""
    return [line for line in log.splitlines() if any(marker in line for marker in LOG_MARKERS)]
