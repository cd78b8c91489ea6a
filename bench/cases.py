"""The benchmark cases and how one run of a case is measured.

A run is one case against one server that is already listening: a preflight
request (is the answer what the case expects?), a short warm-up, then the
measured load, with /proc and the upstream's stub_status read just before and
just after it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import procs, wrkparse
from .servers import DOC_BODY, GIB, MIB, OK_BODY, Server, read_accepts


@dataclass(frozen=True)
class Case:
    name: str  # "ok"; a run's full name adds the workers: "ok-1w"
    title: str
    path: str
    connections: int = 50
    status: int = 200  # what every response must carry
    upload: bool = False  # POST 100 MiB bodies from Python instead of running wrk
    baseline: bool = False  # also measure the upstream directly, to know what the proxy adds
    tls: bool = False  # clients speak HTTPS to the proxy, which ends TLS there (the upstream stays plain HTTP)
    versus: str = "nginx"  # what errorproxy is compared with: nginx, or errorproxy on `versus_path`
    versus_path: str | None = None  # the path the `versus` run measures (None: `path`)
    put: bool = False  # PUT with If-Match (the ETag the preflight read) to PATH/N, N cycling to 1,000
    unbuffered: bool = False  # a large body: also run nginx with `proxy_buffering off` (nginx_unbuffered)

    @property
    def proxies(self) -> tuple[str, ...]:
        """What a round runs besides the upstream alone, in order: ("errorproxy", "nginx", "nginx_unbuffered")."""
        return ("errorproxy", self.versus) + (("nginx_unbuffered",) if self.unbuffered else ())


CASES = (
    Case("ok", "small 200 JSON, passed through", "/ok", connections=50),
    Case("conflict", "409 intercepted, answered as problem+json", "/conflict", connections=50, status=409),
    Case("mib", "1 MiB download", "/mib", connections=8, unbuffered=True),
    Case("gib", "1 GiB download, one at a time", "/gib", connections=1, unbuffered=True),
    Case("conns", "small 200 JSON, 1,000 connections at once", "/ok", connections=1000),
    Case("upload", "100 MiB upload, one at a time", "/upload", connections=1, upload=True, baseline=True,
         unbuffered=True),
    Case("latency", "small 200 JSON at concurrency 1", "/ok", connections=1, baseline=True),
    Case("tls-ok", "small 200 JSON over HTTPS, TLS ended at the proxy", "/ok", connections=50, tls=True),
    Case("tls-mib", "1 MiB download over HTTPS, TLS ended at the proxy", "/mib", connections=8, tls=True,
         unbuffered=True),
    # What the conflict guard costs a write (a GET before it, a GET after it, the lock): reported, not a target.
    Case("guard-write", "PUT with If-Match through the conflict guard, vs. the same PUT unguarded",
         "/guarded/doc/", connections=8, versus="unguarded", versus_path="/doc/", put=True),
)


@dataclass(frozen=True)
class Load:
    """How hard and how long each run pushes."""

    duration: float = 5.0  # seconds of measured wrk load
    warmup: float = 1.0  # seconds of unmeasured load first (one upload for the upload case)
    uploads: int = 5  # measured uploads a run
    upload_size: int = 100 * MIB


SIZES = {"/mib": MIB, "/gib": GIB}  # bodies whose size the preflight checks


class CheckFailed(Exception):
    """A server's answer is not what the case needs (wrong status, wrong type, wrong size)."""


def preflight(case: Case, server: Server) -> dict[str, object]:
    """One request, checked; returns what the answer showed (status, type, whether the ETag survived)."""
    url = server.url + case.path
    if case.put:
        return _preflight_put(case, server)
    request = urllib.request.Request(url, data=b"x" * 1024 if case.upload else None)
    try:
        with urllib.request.urlopen(request, timeout=60, context=procs.client_context(url)) as response:
            status, headers = response.status, response.headers
            body, size = _read_counted(response)
    except urllib.error.HTTPError as exc:
        status, headers = exc.code, exc.headers
        body, size = _read_counted(exc)
    seen = {"status": status, "content_type": headers.get("Content-Type"), "etag": headers.get("ETag")}
    if status != case.status:
        raise CheckFailed(f"{server.name} {case.path}: status {status}, expected {case.status}: {body[:200]!r}")
    if case.path == "/ok" and body != OK_BODY.encode():
        raise CheckFailed(f"{server.name} /ok: body {body[:200]!r}")
    if case.path in SIZES and size != SIZES[case.path]:
        raise CheckFailed(f"{server.name} {case.path}: {size} bytes, expected {SIZES[case.path]}")
    if case.status == 409 and server.name != "upstream" and \
            not (seen["content_type"] or "").startswith("application/problem+json"):
        raise CheckFailed(f"{server.name} /conflict: Content-Type {seen['content_type']}, expected problem+json")
    return seen


def _preflight_put(case: Case, server: Server) -> dict[str, object]:
    """GET PATH0 for its ETag (the guard's, on the guarded path), then PUT it back with If-Match."""
    url = server.url + case.path + "0"
    with urllib.request.urlopen(url, timeout=10) as response:
        etag = response.headers.get("ETag")
    # Unguarded, no If-Match: nginx itself would answer an If-Match naming no ETag of its own with 412.
    conditions = {"If-Match": etag} if etag else {}
    request = urllib.request.Request(url, data=DOC_BODY.encode(), method="PUT",
                                     headers={**conditions, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, new_etag = response.status, response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"{server.name} PUT {case.path}0: status {exc.code}: {exc.read()[:200]!r}") from None
    guarded = case.path.startswith("/guarded/")
    if status != 200 or (guarded and (etag is None or new_etag != etag)):
        raise CheckFailed(f"{server.name} PUT {case.path}0: status {status}, ETag {etag} then {new_etag}")
    return {"status": status, "content_type": None, "etag": etag}


def _read_counted(response) -> tuple[bytes, int]:
    """The first 4 KiB of a body (kept for messages) and its whole size, read without holding it all."""
    first = response.read(4096)
    size = len(first)
    while chunk := response.read(1 << 20):
        size += len(chunk)
    return first, size


def measure(case: Case, server: Server, upstream: Server, wrk: str, load: Load, body: bytes | None,
            during_load: contextlib.AbstractContextManager | None = None) -> dict:
    """Check, warm up, then run the case's load against `server` and return its numbers.

    `during_load` is entered just before the measured load and left just after it, the
    warm-up not included (a profiler sampling the server).
    """
    seen = preflight(case, server)
    script = _script(case, seen)
    try:
        accepts_at_warmup = read_accepts(upstream)
        if case.upload:
            upload_times(server, case.path, body, count=1)
        else:
            run_wrk(wrk, server.url + case.path, case.connections, load.warmup, script)

        cpu_before = procs.cpu_seconds(procs.tree(server.process.pid))
        accepts_before = read_accepts(upstream)
        with during_load or contextlib.nullcontext():
            result = (_upload_load(server, case, body, load) if case.upload
                      else _wrk_load(server, case, wrk, load, script))
    finally:
        if script is not None:
            os.unlink(script)
    # stub_status counts the connection that reads it: the `before` read is one of the accepts.
    accepts_after = read_accepts(upstream)
    cpu_after = procs.cpu_seconds(procs.tree(server.process.pid))

    if server is not upstream:
        cpu = sum(seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu_after.items())
        rss = procs.peak_rss_kib(list(cpu_after))
        result.update(
            cpu_us_per_req=round(cpu / result["requests"] * 1e6, 1),
            rss_mb=round(sum(rss.values()) / 1024, 1),
            rss_max_mb=round(max(rss.values()) / 1024, 1),
            processes=len(rss),
            upstream_connections=accepts_after - accepts_before - 1,
            upstream_connections_with_warmup=accepts_after - accepts_at_warmup - 2,
        )
    if case.status == 409:
        result["etag_kept"] = seen["etag"] is not None
    return result


def _script(case: Case, seen: dict[str, object]) -> str | None:
    """For a PUT case: a wrk Lua script that PUTs DOC_BODY to PATH0 .. PATH999, with If-Match: the ETag seen."""
    if not case.put:
        return None
    etag = seen.get("etag")
    condition = "" if etag is None else "[\"If-Match\"] = '{}', ".format(str(etag).replace("\\", "\\\\").replace("'", "\\'"))
    lua = f"""
local n = 0
local headers = {{{condition}["Content-Type"] = "application/json"}}
request = function()
  n = n + 1
  return wrk.format("PUT", "{case.path}" .. (n % 1000), headers, '{DOC_BODY}')
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-put-", delete=False) as script:
        script.write(lua)
    return script.name


def _wrk_load(server: Server, case: Case, wrk: str, load: Load, script: str | None = None) -> dict:
    summary = run_wrk(wrk, server.url + case.path, case.connections, load.duration, script)
    requests = summary.requests
    if requests == 0:
        raise CheckFailed(f"{server.name} {case.path}: no request completed ({summary.socket_errors})")
    expected_non_2xx = requests if case.status >= 400 else 0
    if summary.non_2xx_3xx != expected_non_2xx:
        raise CheckFailed(f"{server.name} {case.path}: {summary.non_2xx_3xx} of {requests} responses "
                          f"were not 2xx/3xx, expected {expected_non_2xx}")
    return {"rps": round(summary.rps, 1), "mib_s": round(summary.transfer_mib_s, 3),
            "p50_ms": summary.percentiles_ms[50.0], "p99_ms": summary.percentiles_ms[99.0],
            "requests": requests, "errors": summary.errors, "non_2xx_3xx": summary.non_2xx_3xx}


def _upload_load(server: Server, case: Case, body: bytes | None, load: Load) -> dict:
    times = upload_times(server, case.path, body, count=load.uploads)
    elapsed = sum(times)
    return {"mib_s": round(len(times) * len(body) / MIB / elapsed, 1), "rps": round(len(times) / elapsed, 2),
            "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(max(times) * 1000, 1),  # of 5 uploads, the slowest
            "requests": len(times), "errors": 0, "non_2xx_3xx": 0}


def wrk_seconds(duration: float) -> int:
    """The whole seconds wrk runs for `duration` (its -d takes no fractions)."""
    return max(1, round(duration))


def run_wrk(wrk: str, url: str, connections: int, duration: float, script: str | None = None) -> wrkparse.WrkResult:
    """`wrk --latency` with one thread (and a Lua `script`, when given); its summary, parsed."""
    seconds = wrk_seconds(duration)
    argv = [wrk, "--latency", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url]
    if script is not None:
        argv[1:1] = ["-s", script]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if completed.returncode != 0:
        raise CheckFailed(f"wrk exited with {completed.returncode}: {completed.stderr.strip() or completed.stdout}")
    return wrkparse.parse(completed.stdout)


def upload_times(server: Server, path: str, body: bytes | None, count: int) -> list[float]:
    """POST `body` `count` times on one kept-alive connection; the seconds each took, response read."""
    if body is None:
        raise ValueError("an upload case needs a body")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
            response = connection.getresponse()
            answer = response.read()
            times.append(time.perf_counter() - started)
            if response.status != 200:
                raise CheckFailed(f"{server.name} {path}: upload got {response.status}: {answer[:200]!r}")
    finally:
        connection.close()
    return times
