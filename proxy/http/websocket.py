"""WebSocket pass-through: the upgrade goes upstream, then messages flow both ways.

Each side's handshake is its own (aiohttp answers pings and negotiates framing
per hop); messages are relayed unchanged and a close on one side is passed on
with its code and reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict
from yarl import URL

from ..core.headers import connection_tokens, downstream_response_headers
from ..core.problem import Problem
from .render import render
from ..core.settings import UpstreamSettings
from ..upstream.upstreams import Pool, map_failure

log = logging.getLogger("errorproxy.websocket")

MAX_MESSAGE = 16 * 1024 * 1024
# Set by each side's own handshake; copying them would confuse the other hop.
_HANDSHAKE = {
    "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol", "Sec-WebSocket-Accept",
}
_ACTIONABLE = ("WWW-Authenticate", "Retry-After", "Set-Cookie", "Location")
# Close codes that only report a state and must never be sent in a frame (RFC 6455 §7.4.1).
_RESERVED_CODES = {1005, 1006, 1015}


def is_upgrade(request: web.BaseRequest) -> bool:
    return (
        request.method == hdrs.METH_GET
        and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        and any(token.lower() == "upgrade" for token in connection_tokens(request.headers))
    )


async def relay(
    request: web.BaseRequest,
    pool: Pool,
    aim: Callable[[URL], str],
    outgoing: CIMultiDict[str],
    request_id: str,
    upstream: UpstreamSettings,
) -> web.StreamResponse:
    """Relay a WebSocket between the client and the target the pool picks (`aim(target)` is the path there)."""
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    for name in _HANDSHAKE:
        outgoing.popall(name, None)
    session = pool.session(upstream)
    try:
        upstream_ws = await pool.send(upstream, request_id, lambda target: session.ws_connect(
            URL(f"http://{target.raw_authority}{aim(target)}", encoded=True), headers=outgoing, protocols=protocols, autoclose=False,
            max_msg_size=MAX_MESSAGE, compress=0,
        ))
    except asyncio.CancelledError:
        raise
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status < 400:
            raise map_failure(exc, upstream, request_id) from exc
        return _refused(request, exc, request_id)
    except Exception as exc:
        raise map_failure(exc, upstream, request_id) from exc
    handshake = upstream_ws._response
    extra = downstream_response_headers(handshake.headers, "1.1") if handshake is not None else CIMultiDict()
    for name in (*_HANDSHAKE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_TYPE, hdrs.DATE):
        extra.popall(name, None)
    client_ws = web.WebSocketResponse(
        protocols=[upstream_ws.protocol] if upstream_ws.protocol else (),
        autoclose=False, max_msg_size=MAX_MESSAGE, compress=False,
    )
    client_ws.headers.extend(extra)
    try:
        await client_ws.prepare(request)
    except Exception:
        await upstream_ws.close()
        raise
    code = WSCloseCode.OK
    try:
        await asyncio.gather(_pump(upstream_ws, client_ws), _pump(client_ws, upstream_ws))
    except asyncio.CancelledError:
        # Cut by a stop at the end of its grace period, or the client left: "going away" to both.
        code = WSCloseCode.GOING_AWAY
        raise
    finally:
        await client_ws.close(code=code)
        await upstream_ws.close(code=code)
    return client_ws


def _refused(request: web.BaseRequest, exc: aiohttp.WSServerHandshakeError, request_id: str) -> web.StreamResponse:
    """The upstream answered the upgrade with an error: the client gets that status,
    and the headers it needs to act on it (a 401's challenge, a 429's Retry-After)."""
    problem = Problem(
        status=exc.status,
        detail="The service behind this address refused the WebSocket upgrade.",
        instance=request.path,
        request_id=request_id,
        proxy_status=f"received-status={exc.status}",
    )
    response = render(problem)
    for name in _ACTIONABLE:
        for value in (exc.headers or {}).getall(name, ()):
            response.headers.add(name, value)
    return response


async def _pump(source, sink) -> None:
    """Relay messages from source to sink until source closes, then close sink alike."""
    while True:
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            code, reason = message.data, message.extra or ""
            break
        elif message.type is WSMsgType.CLOSING:
            return  # the other pump is closing this socket with the peer's code
        elif message.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
            code, reason = source.close_code, ""
            break
    if code is None or code in _RESERVED_CODES:
        code = WSCloseCode.GOING_AWAY if code == 1006 else WSCloseCode.OK
    if not sink.closed:
        await sink.close(code=code, message=reason.encode()[:123])
    if not source.closed:
        await source.close(code=code)
