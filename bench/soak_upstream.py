"""The soak's upstream: `python -m bench.soak_upstream --port N`, an aiohttp app on 127.0.0.1.

One endpoint per kind of answer the soak sends through the proxy:

| path       | answer |
| ---------- | ------ |
| /fast      | 200, a small JSON body |
| /conflict  | 409, a JSON body and an ETag (the proxy rewrites it, keeping the ETag) |
| /error     | 500, a Python traceback as text/plain (the proxy must never pass it on) |
| /slow      | 200, 1 MiB sent in 16 pieces over about one second |
| /die       | 200 with a Content-Length of 64 KiB; 16 KiB of it, then the connection is closed |
| /upload    | 200 once the whole request body is read, with its size: `{"bytes": N}` |
| /healthz   | 200, for the harness's readiness check |

The soak kills this process with SIGKILL now and then and starts it again on
the same port: answers cut by that death are the point, not a fault here.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

SLOW_SIZE = 1024 * 1024
SLOW_PIECES = 16
SLOW_SECONDS = 1.0
DIE_SIZE = 64 * 1024  # announced
DIE_SENT = 16 * 1024  # sent before the connection is closed
CONFLICT_ETAG = '"v7-doc"'
CONFLICT_BODY = json.dumps({"error": {"message": "Version conflict: document 42 was modified"}, "currentVersion": 7})
TRACEBACK_BODY = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/views.py", line 88, in update\n'
    "    doc.save(expected_version=request.version)\n"
    "sqlalchemy.orm.exc.StaleDataError: UPDATE statement on table 'documents' expected to update 1 row(s)\n"
)


async def fast(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def conflict(request: web.Request) -> web.Response:
    return web.Response(status=409, text=CONFLICT_BODY, content_type="application/json",
                        headers={"ETag": CONFLICT_ETAG})


async def error(request: web.Request) -> web.Response:
    return web.Response(status=500, text=TRACEBACK_BODY, content_type="text/plain")


async def slow(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = SLOW_SIZE
    await response.prepare(request)
    piece = b"s" * (SLOW_SIZE // SLOW_PIECES)
    for number in range(SLOW_PIECES):
        if number:
            # Between pieces only: a pause after the last one would hold up the next request
            # the client sends on this connection, once it has the whole body.
            await asyncio.sleep(SLOW_SECONDS / SLOW_PIECES)
        await response.write(piece)
    await response.write_eof()
    return response


async def die(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = DIE_SIZE
    await response.prepare(request)
    await response.write(b"d" * DIE_SENT)
    # A FIN, not a RST: the proxy is sure to have read the head and the first bytes, so
    # what it meets is a body that ends early, the case under test.
    if request.transport is not None:
        request.transport.close()
    return response


async def upload(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.json_response({"bytes": size})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def app() -> web.Application:
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.add_routes([
        web.get("/fast", fast), web.route("*", "/conflict", conflict), web.get("/error", error),
        web.get("/slow", slow), web.get("/die", die), web.post("/upload", upload), web.get("/healthz", healthz),
    ])
    return application


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # No access log: the soak sends thousands of requests a second. reuse_address lets a
    # restarted upstream bind the port its killed predecessor left in TIME_WAIT.
    web.run_app(app(), host="127.0.0.1", port=args.port, access_log=None, print=None,
                reuse_address=True, shutdown_timeout=1.0)


if __name__ == "__main__":
    main()
