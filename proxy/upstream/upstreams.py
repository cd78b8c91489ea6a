"""`Upstreams`: the one door to every upstream service.

    upstreams = Upstreams()
    response = await upstreams.send(settings, "GET", "/docs/42?x=1", headers, request_id=rid)
    while chunk := await response.read(): ...
    response.release()  # read to its end: the connection goes back to the pool

`send` picks a target (see `balancer`), names it in the request's Host
(unless the client's Host is kept) and prefixes the upstream's base path,
sends through that upstream's connection pool, and tries another target when
the connection could not be made and the request can still be sent again. Every
failure leaves as a `core.errors.ProxyError`, mapped in one place
(`failures.map_failure`); an error raised by the request body itself (the
client's body too large, say) leaves unchanged.

An upstream with several targets still has one pool: it keeps keep-alive
connections per target, and `max_connections` caps them all together.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, TypeVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..core import errors
from ..core.headers import actionable
from ..core.settings import UpstreamSettings
from ..core.targets import authority, base_path, is_unix, split_unix
from .balancer import Balancer, Outcome
from .failures import map_failure, outcome
from .pool import ConnectionPool
from .response import Response
from .session import make_session

log = logging.getLogger("errorproxy.upstream")

R = TypeVar("R")


@dataclass
class _Upstream:
    """What the proxy keeps for one upstream, made inside the running loop on its first request."""

    balancer: Balancer
    connections: ConnectionPool
    # For WebSocket handshakes, made on the first one: one over TCP (key ""), one per Unix socket.
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)


class _Once:
    """A request body that knows whether it has begun to be sent (then it cannot be sent again)."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self.source = source
        self.started = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        return self.source.__aiter__()


class Upstreams:
    """The connection pool, balancer and WebSocket session of each upstream."""

    def __init__(self) -> None:
        self._upstreams: dict[str, _Upstream] = {}

    def _get(self, upstream: UpstreamSettings) -> _Upstream:
        kept = self._upstreams.get(upstream.name)
        if kept is None:
            kept = self._upstreams[upstream.name] = _Upstream(Balancer.from_settings(upstream),
                                                              ConnectionPool(upstream))
        return kept

    async def send(self, upstream: UpstreamSettings, method: str, target: str, headers: CIMultiDict[str],
                   body: AsyncIterable[bytes] | None = None, *, request_id: str,
                   keep_host: bool = False) -> Response:
        """The upstream's response to `method target` (its head; the body is read from it).

        `target` is the path and query as the upstream's base path continues
        it; `headers` are sent as given, but for Host, set per try to the
        target's authority unless `keep_host`.
        """
        connections = self._get(upstream).connections
        once = _Once(body) if body is not None else None

        def attempt(base: URL) -> Awaitable[Response]:
            path = _aim(headers, base, target, keep_host)
            return connections.request(base, method, path, headers, once)

        return await self._try(upstream, request_id, attempt, lambda: once is None or not once.started)

    async def connect_websocket(self, upstream: UpstreamSettings, target: str, headers: CIMultiDict[str], *,
                                protocols: list[str], max_message: int, request_id: str,
                                keep_host: bool = False) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket to the upstream; an upgrade it answers with 4xx/5xx raises `errors.UpgradeRefused`."""
        kept = self._get(upstream)
        tls = kept.connections.tls

        def attempt(base: URL) -> Awaitable[aiohttp.ClientWebSocketResponse]:
            socket_path = split_unix(base)[0] if is_unix(base) else ""
            session = kept.sessions.get(socket_path)
            if session is None:
                session = kept.sessions[socket_path] = make_session(upstream, tls, socket_path or None)
            path = _aim(headers, base, target, keep_host)
            if tls is None:
                url = URL(f"http://{authority(base)}{path}", encoded=True)
                return session.ws_connect(url, headers=headers, protocols=protocols, autoclose=False,
                                          max_msg_size=max_message, compress=0)
            assert upstream.tls is not None
            url = URL(f"https://{base.raw_authority}{path}", encoded=True)
            return session.ws_connect(url, headers=headers, protocols=protocols, autoclose=False,
                                      max_msg_size=max_message, compress=0, ssl=tls,
                                      server_hostname=upstream.tls.server_name or None)

        return await self._try(upstream, request_id, attempt, lambda: True)

    async def _try(self, upstream: UpstreamSettings, request_id: str, attempt: Callable[[URL], Awaitable[R]],
                   replayable: Callable[[], bool]) -> R:
        """`await attempt(target)` at the target the balancer picks, tried again elsewhere while allowed.

        `replayable()` says, after a failure, whether the request could still
        be sent again (False once its body started streaming).
        """
        balancer = self._get(upstream).balancer
        tried: list[int] = []
        while True:
            index = balancer.pick(tried)
            tried.append(index)
            try:
                result = await attempt(upstream.targets[index])
            except errors.ProxyError:
                raise  # the client's side failed (its body): nothing to say about the target
            except aiohttp.WSServerHandshakeError as exc:
                balancer.report(index, Outcome.CONNECTED)
                if exc.status >= 400:
                    keep = tuple(actionable(exc.headers)) if exc.headers is not None else ()
                    raise errors.UpgradeRefused(exc.status, keep) from exc
                raise map_failure(exc, upstream, request_id) from exc
            except Exception as exc:
                result_of_try = outcome(exc)
                balancer.report(index, result_of_try)
                delay = balancer.retry_delay(result_of_try, len(tried), replayable())
                if result_of_try is Outcome.UNREACHABLE:
                    log.warning(
                        "upstream %s target %s unreachable (%s: %s), ejected for %gs%s request_id=%s",
                        upstream.name, upstream.targets[index], type(exc).__name__, str(exc)[:300],
                        upstream.eject_for, "" if delay is None else f", trying another in {delay:g}s",
                        request_id,
                    )
                if delay is None:
                    raise map_failure(exc, upstream, request_id) from exc
            else:
                balancer.report(index, Outcome.CONNECTED)
                return result
            await asyncio.sleep(delay)

    async def close(self) -> None:
        kept, self._upstreams = list(self._upstreams.values()), {}
        for upstream in kept:
            await upstream.connections.close()
            for session in upstream.sessions.values():
                await session.close()


def _aim(headers: CIMultiDict[str], base: URL, target: str, keep_host: bool) -> str:
    """The path to send to `base` (its base path, then `target`); names `base` in Host unless kept."""
    if not keep_host:
        headers["Host"] = authority(base)
    return base_path(base) + target


async def read_capped(response: Response, cap: int) -> tuple[bytes, bool]:
    """Up to `cap` bytes of the body, and whether that is all of it (else: a little more than `cap`).

    A body announced larger than the cap is not read at all. A read that fails
    gives what arrived and False: the caller then treats the body as unparsed.
    """
    length = response.content_length
    if length is not None and length > cap:
        return b"", False
    buffer = b""
    try:
        while len(buffer) <= cap:
            chunk = await response.read()
            if not chunk:
                return buffer, True
            buffer += chunk
    except Exception as exc:
        log.warning("reading an upstream error body failed: %s: %s", type(exc).__name__, str(exc)[:300])
        response.close()
    return buffer, False
