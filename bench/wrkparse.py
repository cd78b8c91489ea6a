"""Read what `wrk --latency` prints into numbers.

wrk formats every value with a unit picked for readability: times as
`136.00us`, `0.87ms`, `1.43s` (or `m`, `h`), sizes in binary steps as
`2.24MB`, `812.84KB`, `0.00B`, counts as `6.83k`. Only the summary lines are
read; the per-thread table is not needed.

>>> result = parse('''Running 2s test @ http://127.0.0.1:8080/ok
...   1 threads and 1 connections
...   Latency Distribution
...      50%  136.00us
...      99%    1.85ms
...   14252 requests in 2.10s, 2.24MB read
... Requests/sec:   6787.24
... Transfer/sec:      1.07MB''')
>>> result.requests, result.rps, result.percentiles_ms[50], result.percentiles_ms[99]
(14252, 6787.24, 0.136, 1.85)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZE_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5}
_NUMBER = r"(\d+(?:\.\d+)?)"

_PERCENTILE = re.compile(rf"^\s+{_NUMBER}%\s+{_NUMBER}(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTALS = re.compile(rf"^\s+(\d+) requests in {_NUMBER}(us|ms|s|m|h), {_NUMBER}(B|KB|MB|GB|TB|PB) read\s*$", re.MULTILINE)
_RPS = re.compile(rf"^Requests/sec:\s+{_NUMBER}\s*$", re.MULTILINE)
_TRANSFER = re.compile(rf"^Transfer/sec:\s+{_NUMBER}(B|KB|MB|GB|TB|PB)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s+Non-2xx or 3xx responses: (\d+)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE)


class WrkParseError(ValueError):
    """The text is not the output of a finished `wrk --latency` run."""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed requests, any status
    duration_s: float
    read_bytes: int  # response bytes, headers included
    rps: float
    transfer_bytes_s: float
    percentiles_ms: dict[float, float] = field(default_factory=dict)  # {50.0: 0.136, 99.0: 1.85}
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values())

    @property
    def transfer_mib_s(self) -> float:
        return self.transfer_bytes_s / 1024**2


def to_ms(value: str, unit: str) -> float:
    """`"136.00", "us"` -> 0.136."""
    return round(float(value) * _TIME_MS[unit], 6)  # 822.00us is 0.822, not 0.8220000000000001


def to_bytes(value: str, unit: str) -> int:
    """`"2.24", "MB"` -> 2348810 (wrk's MB is MiB)."""
    return round(float(value) * _SIZE_BYTES[unit])


def parse(text: str) -> WrkResult:
    """The summary of one wrk run; raises WrkParseError when a required line is missing."""
    totals = _TOTALS.search(text)
    rps = _RPS.search(text)
    transfer = _TRANSFER.search(text)
    if totals is None or rps is None or transfer is None:
        missing = [name for name, found in (("requests", totals), ("Requests/sec", rps), ("Transfer/sec", transfer))
                   if found is None]
        raise WrkParseError(f"not a finished wrk run (no {', '.join(missing)} line): {text[-300:]!r}")
    percentiles = {float(p): to_ms(value, unit) for p, value, unit in _PERCENTILE.findall(text)}
    if not percentiles:
        raise WrkParseError("no latency distribution: was wrk run with --latency?")
    non_2xx = _NON_2XX.search(text)
    socket_errors = _SOCKET_ERRORS.search(text)
    return WrkResult(
        requests=int(totals.group(1)),
        duration_s=to_ms(totals.group(2), totals.group(3)) / 1000,
        read_bytes=to_bytes(totals.group(4), totals.group(5)),
        rps=float(rps.group(1)),
        transfer_bytes_s=to_bytes(transfer.group(1), transfer.group(2)),
        percentiles_ms=percentiles,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, socket_errors.groups())))
        if socket_errors else {},
    )
