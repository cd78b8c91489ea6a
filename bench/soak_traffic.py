"""The soak's client: a mix of requests through the proxy, each answer judged and counted.

Every kind of request has one expected outcome; an upstream restart excuses a
502/504 or a body cut short (see `soak_verdict.in_restart`); anything else is
`unexpected` and the run is not flat.

| kind     | request                      | expected outcome |
| -------- | ---------------------------- | ---------------- |
| fast     | GET /fast                    | ok: 200, the upstream's JSON |
| conflict | PUT /conflict                | rewritten: 409 problem+json, the upstream's ETag kept |
| error    | GET /error                   | rewritten: 500 problem+json, no traceback in it |
| slow     | GET /slow                    | ok: 200, all of the 1 MiB |
| die      | GET /die                     | cut: 200, then the body ends early (the upstream closed mid-body) |
| upload   | POST /upload, 64 KiB-1 MiB   | ok: 200, the upstream read every byte |
| abort    | GET /slow, cancelled at a random 50-600 ms | client_abort |
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import aiohttp

from .soak_upstream import CONFLICT_ETAG, DIE_SIZE, SLOW_SIZE
from .soak_verdict import in_restart

MIX = {"fast": 40, "conflict": 12, "error": 6, "slow": 8, "die": 6, "upload": 14, "abort": 14}  # weights
TIMED = ("fast", "conflict", "error")  # small answers: their latencies make the p50/p99
UPLOAD_MIN, UPLOAD_MAX = 64 * 1024, 1024 * 1024
KEEP = 4096  # bytes of a body kept for its checks
EXAMPLES = 20  # unexpected outcomes kept with their details
RESTART_STATUSES = (502, 504)
RESTART_PAUSE = 0.05  # seconds a client loop waits after an answer the restart explains


@dataclass
class Answer:
    """What one request got: a status (None if no head came), the body's size and start, how it ended."""

    status: int | None = None
    content_type: str = ""
    etag: str | None = None
    size: int = 0
    head: bytes = b""
    error: str | None = None  # the exception's class name, when the exchange failed
    aborted: bool = False  # cancelled by the client, on purpose


def expected(kind: str, answer: Answer, upload_size: int = 0) -> str | None:
    """The outcome when the answer is what `kind` should get, else None.

    >>> expected("fast", Answer(200, "application/json", size=12, head=b'{"ok": true}'))
    'ok'
    >>> expected("die", Answer(200, "application/octet-stream", size=16384, error="ClientPayloadError"))
    'cut'
    >>> expected("die", Answer(502, "application/problem+json")) is None
    True
    """
    if answer.aborted:
        return "client_abort" if kind == "abort" else None
    if kind == "die":
        # The bytes before the cut may be fewer than the upstream sent: an aborted response is aborted.
        return "cut" if answer.status == 200 and answer.error and answer.size < DIE_SIZE else None
    if answer.error:
        return None
    if kind == "fast":
        return "ok" if answer.status == 200 and _json(answer.head) == {"ok": True} else None
    if kind in ("slow", "abort"):  # an abort whose answer came before its deadline
        return "ok" if answer.status == 200 and answer.size == SLOW_SIZE else None
    if kind == "upload":
        return "ok" if answer.status == 200 and _json(answer.head) == {"bytes": upload_size} else None
    want = {"conflict": 409, "error": 500}[kind]
    problem = _json(answer.head)
    if (answer.status == want and answer.content_type == "application/problem+json" and isinstance(problem, dict)
            and problem.get("status") == want and b"Traceback" not in answer.head
            and (kind != "conflict" or answer.etag == CONFLICT_ETAG)):
        return "rewritten"
    return None


def classify(kind: str, answer: Answer, during_restart: bool, upload_size: int = 0) -> str:
    """The outcome of one request: the expected one, `restart` when a restart explains it, else `unexpected`.

    >>> classify("fast", Answer(502, "application/problem+json"), during_restart=True)
    'restart'
    >>> classify("fast", Answer(502, "application/problem+json"), during_restart=False)
    'unexpected'
    >>> classify("slow", Answer(200, size=1000, error="ClientPayloadError"), during_restart=True)
    'restart'
    """
    outcome = expected(kind, answer, upload_size)
    if outcome is not None:
        return outcome
    if during_restart and (answer.status in RESTART_STATUSES or answer.error is not None):
        return "restart"
    return "unexpected"


def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


@dataclass
class Tally:
    """Counts by outcome (for the current sample window and for the run), and small-request latencies."""

    window: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    window_ms: list[float] = field(default_factory=list)
    all_ms: list[float] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)

    def add(self, kind: str, outcome: str, answer: Answer, started: float, elapsed: float) -> None:
        for counts in (self.window, self.totals, self.by_kind.setdefault(kind, {})):
            counts[outcome] = counts.get(outcome, 0) + 1
        if kind in TIMED and outcome in ("ok", "rewritten"):
            self.window_ms.append(elapsed * 1000)
            self.all_ms.append(elapsed * 1000)
        if outcome == "unexpected" and len(self.examples) < EXAMPLES:
            self.examples.append({"t": round(started, 2), "kind": kind, "status": answer.status,
                                  "error": answer.error, "size": answer.size,
                                  "body": answer.head[:300].decode("utf-8", "replace")})

    def take_window(self) -> tuple[dict[str, int], list[float]]:
        counts, latencies = self.window, self.window_ms
        self.window, self.window_ms = {}, []
        return counts, latencies


class Traffic:
    """`concurrency` loops of random requests against `url` until `deadline` (a time.monotonic() value)."""

    def __init__(self, url: str, concurrency: int, seed: int, restarts: list[dict], origin: float) -> None:
        self.url = url
        self.concurrency = concurrency
        self.random = random.Random(seed)
        self.restarts = restarts  # appended to by the restart loop while requests run
        self.origin = origin  # time.monotonic() of t = 0
        self.tally = Tally()
        self.payload = memoryview(self.random.randbytes(UPLOAD_MAX))

    async def run(self, session: aiohttp.ClientSession, deadline: float) -> None:
        await asyncio.gather(*(self._loop(session, deadline) for _ in range(self.concurrency)))

    async def _loop(self, session: aiohttp.ClientSession, deadline: float) -> None:
        kinds, weights = list(MIX), list(MIX.values())
        while time.monotonic() < deadline:
            kind = self.random.choices(kinds, weights)[0]
            if await self.one(session, kind) == "restart":
                # As a client would: without a pause, the loops spin on instant 502s while the
                # upstream is down and those swamp every other count.
                await asyncio.sleep(RESTART_PAUSE)

    async def one(self, session: aiohttp.ClientSession, kind: str) -> str:
        """Send one request of `kind`, judge and count its answer; returns the outcome."""
        size = self.random.randint(UPLOAD_MIN, UPLOAD_MAX) if kind == "upload" else 0
        started = time.monotonic()
        if kind == "abort":
            answer = await self._abort(session, self.random.uniform(0.05, 0.6))
        elif kind == "upload":
            answer = await fetch(session, "POST", f"{self.url}/upload", self.payload[:size])
        else:
            method = "PUT" if kind == "conflict" else "GET"
            answer = await fetch(session, method, f"{self.url}/{kind}")
        ended = time.monotonic()
        t0, t1 = started - self.origin, ended - self.origin
        outcome = classify(kind, answer, in_restart(t0, t1, self.restarts), size)
        self.tally.add(kind, outcome, answer, t0, ended - started)
        return outcome

    async def _abort(self, session: aiohttp.ClientSession, delay: float) -> Answer:
        task = asyncio.ensure_future(fetch(session, "GET", f"{self.url}/slow"))
        done, _ = await asyncio.wait({task}, timeout=delay)
        if done:
            return task.result()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # the soak itself is being stopped
        return Answer(aborted=True)


async def fetch(session: aiohttp.ClientSession, method: str, url: str, data: memoryview | None = None) -> Answer:
    """One exchange, its body counted (and its first KEEP bytes kept), never raising for network trouble."""
    answer = Answer()
    try:
        async with session.request(method, url, data=data) as response:
            answer.status = response.status
            answer.content_type = response.content_type
            answer.etag = response.headers.get("ETag")
            async for chunk in response.content.iter_any():
                if answer.size < KEEP:
                    answer.head += chunk[:KEEP - answer.size]
                answer.size += len(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        answer.error = type(exc).__name__
    return answer
