"""`Upstreams`: the one door to every upstream service.

    upstreams = Upstreams()
    response = await upstreams.send(settings, "GET", "/docs/42?x=1", headers, request_id=rid)
    while chunk := await response.read(): ...
    response.release()  # read to its end: the connection goes back to the pool

`send` picks a target (see `balancer`), names it in the request's Host
(unless the client's Host is kept) and prefixes the upstream's base path,
sends through that upstream's connection pool, and tries again, on another
target when one is left, after the failures `retry_on` names, while the
request can be sent again and the retry budget lasts (`limits`). Every
failure leaves as a `core.errors.ProxyError`, mapped in one place
(`failures.map_failure`); an error raised by the request body itself (the
client's body too large, say) leaves unchanged. Past the upstream's breaker
caps, a request is refused at once (`errors.ConnectionLimitReached`).

An upstream with several targets still has one pool: it keeps keep-alive
connections per target, and `max_connections` caps them all together. Its
health checks (`health`) run while the `Upstreams` that owns it is open. A
reload's new `Upstreams` adopts each upstream whose settings did not change
(`adopt`), pool, ejections and checks, so a reload keeps connections warm.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, TypeVar

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict
from yarl import URL

from ..core import errors
from ..core.headers import actionable
from ..core.settings import UpstreamSettings
from ..core.targets import is_unix, split_unix
from ..observe import metrics
from .balancer import IDEMPOTENT, Outcome
from .failures import map_failure, outcome, retry_reason
from .response import Interim, Response
from .session import make_session
from .state import UpstreamState

log = logging.getLogger("errorproxy.upstream")

R = TypeVar("R")
_DISCARD = 64 * 1024  # most body bytes read off an answer that is retried, to keep its connection
_DISCARD_TIME = 1.0  # seconds for that; past them, or past those bytes, the connection is closed instead


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
        self._upstreams: dict[str, UpstreamState] = {}

    def _get(self, upstream: UpstreamSettings) -> UpstreamState:
        kept = self._upstreams.get(upstream.name)
        if kept is None:
            kept = self._upstreams[upstream.name] = UpstreamState.start(upstream, self)
        return kept

    def adopt(self, previous: Upstreams, upstreams: Iterable[UpstreamSettings]) -> list[str]:
        """Take over from `previous` each of `upstreams` whose settings are unchanged; their names.

        Pool, ejections and health checks go on as they were. `previous` still
        serves its requests in flight with them, but no longer closes them.
        An upstream whose TLS reads files is built afresh, so a reload reads
        rotated certificates.

        >>> from yarl import URL
        >>> old, new = Upstreams(), Upstreams()
        >>> new.adopt(old, [UpstreamSettings("app", URL("http://127.0.0.1:9000"))])  # never used: nothing to adopt
        []
        """
        adopted = []
        for upstream in upstreams:
            kept = previous._upstreams.get(upstream.name)
            reads_files = upstream.tls is not None and bool(upstream.tls.ca_file or upstream.tls.client_cert)
            if (kept is not None and kept.owner is previous and kept.settings == upstream and not reads_files
                    and upstream.name not in self._upstreams):
                kept.owner = self
                self._upstreams[upstream.name] = kept
                adopted.append(upstream.name)
        return adopted

    def ejected(self, upstream: UpstreamSettings) -> list[bool]:
        """For each target of `upstream`, whether it is out of rotation now (its health checks start, if not yet)."""
        balancer = self._get(upstream).balancer
        return [balancer.ejected(index) for index in range(len(upstream.targets))]

    def send(self, upstream: UpstreamSettings, method: str, target: str, headers: CIMultiDict[str],
             body: AsyncIterable[bytes] | None = None, *, request_id: str,
             keep_host: bool = False, interim: Interim | None = None) -> Awaitable[Response]:
        """The upstream's response to `method target` (its head; the body is read from it).

        `target` is the path and query as the upstream's base path continues
        it; `headers` are sent as given, but for Host, set per try to the
        target's authority unless `keep_host`; `interim` is told each interim
        response (1xx) but 100 Continue. (A function that hands over the
        tries' coroutine, to be awaited: one coroutine less a request.)
        """
        kept = self._get(upstream)
        connections, aims = kept.connections, kept.aims
        once = _Once(body) if body is not None else None

        def attempt(index: int) -> Awaitable[Response]:
            aim = aims[index]
            return connections.request(aim[2], method, _aim(headers, aim, target, keep_host), headers, once, interim)

        return self._tries(kept, request_id, attempt, once is None and method in IDEMPOTENT,
                           lambda: once is not None and once.started)

    async def connect_websocket(self, upstream: UpstreamSettings, target: str, headers: CIMultiDict[str], *,
                                protocols: list[str], max_message: int, request_id: str,
                                keep_host: bool = False) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket to the upstream; an upgrade it answers with 4xx/5xx raises `errors.UpgradeRefused`."""
        kept = self._get(upstream)
        tls = kept.connections.tls

        def attempt(index: int) -> Awaitable[aiohttp.ClientWebSocketResponse]:
            base = upstream.targets[index]
            socket_path = split_unix(base)[0] if is_unix(base) else ""
            session = kept.sessions.get(socket_path)
            if session is None:
                session = kept.sessions[socket_path] = make_session(upstream, tls, socket_path or None)
            aim = kept.aims[index]
            path = _aim(headers, aim, target, keep_host)
            if tls is None:
                url, secure = URL(f"http://{aim[0]}{path}", encoded=True), {}
            else:
                assert upstream.tls is not None
                url = URL(f"https://{base.raw_authority}{path}", encoded=True)
                secure = {"ssl": tls, "server_hostname": upstream.tls.server_name or None}
            return session.ws_connect(url, headers=headers, protocols=protocols, autoclose=False,
                                      max_msg_size=max_message, compress=0, **secure)

        return await self._tries(kept, request_id, attempt, True, lambda: False)

    async def _tries(self, kept: UpstreamState, request_id: str, attempt: Callable[[int], Awaitable[R]],
                     idempotent: bool, body_started: Callable[[], bool]) -> R:
        """`await attempt(index)` at the target the balancer picks, within the upstream's breaker caps,
        tried again (see `balancer`) while allowed.

        `idempotent`: the method is, and the request has no body.
        `body_started()` says, after a failure, whether its body began to stream.
        """
        upstream, balancer, breaker = kept.settings, kept.balancer, kept.breaker
        if breaker is not None:
            cap = breaker.enter()
            if cap is not None:
                log.warning("upstream %s: %s (%d) reached, %d request(s) awaiting it: 503 request_id=%s",
                            upstream.name, cap, getattr(upstream, cap), breaker.active, request_id)
                metrics.upstream_failed(upstream.name, errors.ConnectionLimitReached.proxy_status)
                raise errors.ConnectionLimitReached()
        try:
            kept.budget.request()
            tried: list[int] = []
            while True:
                index = balancer.pick(tried)
                tried.append(index)
                try:
                    result = await attempt(index)
                except errors.ProxyError:
                    raise  # the client's side failed (its body): nothing to say about the target
                except aiohttp.WSServerHandshakeError as exc:
                    answered = Outcome.FAILED if exc.status >= 500 else Outcome.ANSWERED
                    kept.report(index, answered, exc.status, request_id)
                    if exc.status >= 300:  # a redirect (never followed: `session`) or a refusal
                        keep = tuple(actionable(exc.headers)) if exc.headers is not None else ()
                        if exc.status == 426 and exc.headers is not None:  # RFC 9110 §15.5.22: it names the protocols
                            keep += tuple((hdrs.UPGRADE, value) for value in exc.headers.getall(hdrs.UPGRADE, ()))
                        raise errors.UpgradeRefused(exc.status, keep) from exc
                    raise map_failure(exc, upstream, request_id) from exc
                except Exception as exc:
                    result_of_try = outcome(exc)
                    what = f"{type(exc).__name__}: {str(exc)[:300]}"
                    ejected = kept.report(index, result_of_try, what, request_id, quiet=True)
                    reason = retry_reason(exc, result_of_try)
                    delay = kept.retry_delay(reason, len(tried), idempotent, body_started(), request_id)
                    if result_of_try is Outcome.UNREACHABLE:
                        log.warning(
                            "upstream %s target %s unreachable (%s)%s%s request_id=%s",
                            upstream.name, upstream.targets[index], what,
                            "" if ejected is None else f", ejected for {ejected:g}s",
                            "" if delay is None else f", trying another in {delay:g}s", request_id,
                        )
                    elif delay is not None:
                        log.warning("upstream %s target %s failed (%s), retrying in %gs request_id=%s",
                                    upstream.name, upstream.targets[index], what, delay, request_id)
                    if delay is None:
                        raise map_failure(exc, upstream, request_id) from exc
                    metrics.upstream_retried(upstream.name, reason or "")
                else:
                    if not isinstance(result, Response):
                        balancer.report(index, Outcome.ANSWERED)
                        return result
                    status = result.status
                    if status < 500:
                        balancer.report(index, Outcome.ANSWERED)  # which never ejects: nothing to log
                    else:
                        kept.report(index, Outcome.FAILED, status, request_id)
                    if not upstream.retries_status(status):
                        return result
                    delay = kept.retry_delay(str(status), len(tried), idempotent, False, request_id)
                    if delay is None:
                        return result  # the last answer is the client's
                    log.warning("upstream %s target %s answered %d, retrying in %gs request_id=%s",
                                upstream.name, upstream.targets[index], status, delay, request_id)
                    metrics.upstream_retried(upstream.name, str(status))
                    await _discard(result)
                await asyncio.sleep(delay)
        finally:
            if breaker is not None:
                breaker.leave()

    async def close(self) -> None:
        """Close every upstream this one owns (those a newer `Upstreams` adopted are its to close)."""
        kept, self._upstreams = list(self._upstreams.values()), {}
        for upstream in kept:
            if upstream.owner is self:
                await upstream.close()


async def _discard(response: Response) -> None:
    """Drop an answer that is retried: its body read (a little, briefly) so its connection serves again, else closed."""
    try:
        async with asyncio.timeout(_DISCARD_TIME):
            _, complete = await read_capped(response, _DISCARD)
    except TimeoutError:
        complete = False
    except BaseException:
        response.close()
        raise
    if complete:
        response.release()
    else:
        response.close()


def _aim(headers: CIMultiDict[str], aim: tuple[str, str, tuple[str, int]], target: str, keep_host: bool) -> str:
    """The path to send to a target (`aim`: its Host, base path and dial key, `UpstreamState.aims`),
    then `target`; names the target in Host unless kept."""
    if not keep_host:
        headers["Host"] = aim[0]
    return aim[1] + target


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
