"""WebSocket pass-through: the upgrade goes upstream, then messages flow both ways.

Each side's handshake is its own (aiohttp answers pings and negotiates framing
per hop); messages are relayed unchanged and a close on one side is passed on
with its code and reason.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict

from ..core import errors
from ..core.framing import is_websocket_upgrade
from ..core.headers import downstream_response_headers
from ..core.settings import UpstreamSettings
from ..observe.accesslog import Exchange
from ..upstream import Upstreams
from .aiohttp_private import handshake_headers

log = logging.getLogger("errorproxy.websocket")

MAX_MESSAGE = 16 * 1024 * 1024  # the largest message relayed each way; a larger one closes with 1009
_MAX_MSG_SIZE = MAX_MESSAGE + 1  # aiohttp refuses a message of its max_msg_size itself, not only a larger one
# Set by each side's own handshake; copying them would confuse the other hop.
_HANDSHAKE = {
    "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol", "Sec-WebSocket-Accept",
}
# Close codes that only report a state and must never be sent in a frame (RFC 6455 §7.4.1).
_RESERVED_CODES = {1005, 1006, 1015}


def is_upgrade(request: web.BaseRequest) -> bool:
    headers = request.headers
    return hdrs.UPGRADE in headers and is_websocket_upgrade(request.method, headers)  # nearly every request: no


class RelayedWebSocket(web.WebSocketResponse):
    """The client's side of a relayed WebSocket; logged as passed through."""

    format = "passthrough"


async def relay(request: web.BaseRequest, upstreams: Upstreams, upstream: UpstreamSettings, target: str,
                outgoing: CIMultiDict[str], exchange: Exchange, keep_host: bool) -> web.StreamResponse:
    """Relay a WebSocket between the client and `upstream` (`target`: path and query there).

    The exchange records the 101 once the client has it, and the message bytes
    each way as bytes_in and bytes_out; a WebSocket that ends with its client's
    connection is a 101 still, not a client gone before its answer.
    """
    request_id = exchange.request_id
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    for name in _HANDSHAKE:
        outgoing.popall(name, None)
    try:
        upstream_ws = await upstreams.connect_websocket(upstream, target, outgoing, protocols=protocols,
                                                        max_message=_MAX_MSG_SIZE, request_id=request_id,
                                                        keep_host=keep_host)
    except errors.UpgradeRefused as refused:
        exchange.answered(refused.status)
        raise  # the handler renders it in the route's shape, as the upstream's error
    exchange.answered(101)
    handshake = handshake_headers(upstream_ws)
    extra = downstream_response_headers(handshake, "1.1") if handshake is not None else CIMultiDict()
    for name in (*_HANDSHAKE, hdrs.CONTENT_LENGTH, hdrs.CONTENT_TYPE, hdrs.DATE):
        extra.popall(name, None)
    client_ws = RelayedWebSocket(
        protocols=[upstream_ws.protocol] if upstream_ws.protocol else (),
        autoclose=False, max_msg_size=_MAX_MSG_SIZE, compress=False,
    )
    client_ws.headers.extend(extra)
    try:
        await client_ws.prepare(request)
    except Exception:
        await upstream_ws.close()
        raise
    exchange.status, exchange.format = 101, RelayedWebSocket.format
    code = WSCloseCode.OK
    sent = [0, 0]  # message bytes from the client, and to it
    try:
        await asyncio.gather(_pump(upstream_ws, client_ws, sent, 1), _pump(client_ws, upstream_ws, sent, 0))
    except asyncio.CancelledError:
        # Cut by a stop at the end of its grace period, or the client left: "going away" to both.
        code = WSCloseCode.GOING_AWAY
        raise
    finally:
        exchange.bytes_in, exchange.bytes_out = sent
        await client_ws.close(code=code)
        await upstream_ws.close(code=code)
    return client_ws


async def _pump(source, sink, sent: list[int], which: int) -> None:
    """Relay messages from source to sink until source closes, then close sink alike; their
    bytes are added up in `sent[which]`."""
    while True:
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
            sent[which] += len(message.data.encode("utf-8", "surrogatepass"))
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
            sent[which] += len(message.data)
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
