"""Active health checks: `GET path` to each target of an upstream, every `interval`.

One task a target, started by `Upstreams` with the upstream's first use inside
the running loop and cancelled when it closes. Each verdict goes to the
balancer (`Balancer.mark`): a failed check takes the target out of rotation,
a passed one puts it back. A check is its own short connection, outside the
pool, so it never waits behind requests for a free connection and never
takes one from them; it is made as the pool makes its connections (TCP, TLS
with the pool's context for `https://`, or the Unix socket). The verdict is
the status line's; the rest of the answer is read to its end (a little, for
a moment) so the connection closes cleanly on both sides.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl

from yarl import URL

from ..core.settings import HealthCheck, UpstreamSettings
from ..core.targets import authority, dial_key, is_unix
from ..observe import metrics
from .balancer import Balancer
from .tls import failure, server_name

log = logging.getLogger("errorproxy.upstream")

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")
_LINE_LIMIT = 8192  # a status line longer than this is no answer to a health check
_REST = 64 * 1024  # most bytes read after the status line, before closing anyway
_CLOSE_TIME = 0.5  # seconds, at most, for the connection to close once the verdict is in


async def probe(target: URL, check: HealthCheck, tls: ssl.SSLContext | None = None,
                sni: str | None = None) -> str | None:
    """None if `target` answers `GET check.path` with an expected status within `check.timeout`; else why not.

    `tls` (and `sni`, the name to send and check) for an `https://` target.
    The verdict is the status line's; then the connection is closed once the
    answer ends (`Connection: close`), or past `_REST` bytes or `_CLOSE_TIME`.
    """
    request = (f"GET {check.path} HTTP/1.1\r\nHost: {authority(target)}\r\n"
               "User-Agent: errorproxy-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n")
    host, port = dial_key(target)
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            async with asyncio.timeout(check.timeout):
                if is_unix(target):
                    reader, writer = await asyncio.open_unix_connection(host, limit=_LINE_LIMIT)
                else:
                    reader, writer = await asyncio.open_connection(host, port, limit=_LINE_LIMIT, ssl=tls,
                                                                   server_hostname=(sni or host) if tls else None)
                writer.write(request.encode("ascii", "surrogateescape"))
                line = await reader.readline()
        except TimeoutError:
            return f"no answer within {check.timeout:g}s"
        except ValueError:  # StreamReader: the line is longer than its limit
            return "not an HTTP response (a status line too long)"
        except ssl.SSLError as exc:
            return failure(exc).words
        except OSError as exc:
            return (exc.strerror or type(exc).__name__).lower()
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            return "not an HTTP response" if line else "the connection closed without an answer"
        await _rest(reader)
        status = int(match.group(1))
        return None if status in check.expect else f"status {status}"
    finally:
        if writer is not None:
            await _close(writer)


async def _rest(reader: asyncio.StreamReader) -> None:
    """Read what follows the status line, up to `_REST` bytes and `_CLOSE_TIME`: the upstream closes after it."""
    left = _REST
    try:
        async with asyncio.timeout(_CLOSE_TIME):
            while left > 0 and (chunk := await reader.read(min(left, 16384))):
                left -= len(chunk)
    except (OSError, TimeoutError):
        pass  # the verdict is in; how the connection ends does not change it


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_TIME):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        pass


async def watch(upstream: UpstreamSettings, index: int, balancer: Balancer, tls: ssl.SSLContext | None) -> None:
    """Check target `index` of `upstream` until cancelled, telling `balancer` each verdict.

    `tls` is the upstream pool's context, for an `https://` upstream.
    """
    check = upstream.health_check
    assert check is not None
    target = upstream.targets[index]
    host, port = dial_key(target)
    where = host if is_unix(target) else f"{host}:{port}"
    sni = server_name(upstream.tls, host) if upstream.tls is not None else None
    while True:
        try:
            problem = await probe(target, check, tls, sni)
        except Exception as exc:  # noqa: BLE001 - a check that breaks must not end the checking
            problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        if balancer.mark(index, problem is None):
            if problem is None:
                log.info("upstream %s target %s passed its health check: back in rotation", upstream.name, where)
            else:
                log.warning("upstream %s target %s failed its health check (GET %s: %s): out of rotation",
                            upstream.name, where, check.path, problem)
                metrics.target_ejected(upstream.name, "health_check")
        await asyncio.sleep(check.interval)
