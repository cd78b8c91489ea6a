"""The made-up legacy service `errorproxy demo` puts the proxy in front of.

It answers the way old backends do, with nothing to say about standards:

    GET  /documents/42   200  ETag: "v7-doc"
    PUT  /documents/42   409  {"error": {"message": "Version conflict: ..."}, "currentVersion": 7}
    GET  /crash          500  Traceback (most recent call last): ...
    GET  /notes/1        200  no ETag;  PUT /notes/1: 200, whatever was there before (no concurrency control)
"""

from __future__ import annotations

import asyncio
import json
import logging
import math

from aiohttp import web

log = logging.getLogger("errorproxy.demo")

MIB = 1024 * 1024
CHUNK = bytes(64 * 1024)  # one buffer, written again and again: a download is never built in memory
MAX_DOWNLOAD_MIB = 4096
DEFAULT_DOWNLOAD_MIB = 100
MAX_SLOW_SECONDS = 30.0
DEFAULT_SLOW_SECONDS = 5.0
DOCUMENT_ID = "42"
DOCUMENT_VERSION = 7
DOCUMENT_ETAG = f'"v{DOCUMENT_VERSION}-doc"'
MAX_NOTES = 1000  # the notes store's bounds: a demo, not a database
MAX_NOTE_BYTES = 64 * 1024
TRACEBACK = """\
Traceback (most recent call last):
  File "/srv/legacy-docs/app/handlers/documents.py", line 214, in save_document
    repository.update(document_id, payload, expected_version=payload["version"])
  File "/srv/legacy-docs/app/storage/repository.py", line 88, in update
    cursor.execute(UPDATE_DOCUMENT_SQL, params)
  File "/usr/lib/python3.11/site-packages/psycopg2/extras.py", line 146, in execute
    return super().execute(query, vars)
psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "documents_pkey"
DETAIL:  Key (id)=(42) already exists.
CONTEXT:  UPDATE documents SET body = %(body)s, version = version + 1 WHERE id = %(id)s
"""


def legacy_app() -> web.Application:
    """The demo "legacy" service: plain aiohttp, no errorproxy code involved."""
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hello", hello)
    # Only GET and PUT: other methods get aiohttp's 405 with an Allow header.
    app.router.add_get("/documents/{id}", get_document)
    app.router.add_put("/documents/{id}", put_document)
    app.router.add_get("/crash", crash)
    app.router.add_get("/slow", slow)
    app.router.add_get("/download", download)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/notes/{id}", get_note)
    app.router.add_put("/notes/{id}", put_note)
    app[NOTES] = {"1": {"id": 1, "title": "Shopping list", "items": ["milk"]}}
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.on_response_prepare.append(_legacy_headers)
    return app


NOTES = web.AppKey("notes", dict)


async def get_note(request: web.Request) -> web.Response:
    note = request.app[NOTES].get(request.match_info["id"])
    if note is None:
        return _legacy_error(404, f"note {request.match_info['id']} not found")
    return web.json_response(note)


async def put_note(request: web.Request) -> web.Response:
    """Whatever arrives replaces what is there: no version, no ETag, no If-Match. The last writer wins."""
    notes = request.app[NOTES]
    key = request.match_info["id"]
    raw = await request.content.read(MAX_NOTE_BYTES + 1)
    if len(raw) > MAX_NOTE_BYTES:
        return _legacy_error(413, f"a note holds at most {MAX_NOTE_BYTES} bytes")
    if key not in notes and len(notes) >= MAX_NOTES:
        return _legacy_error(507, f"the demo keeps at most {MAX_NOTES} notes")
    try:
        note = json.loads(raw)
    except ValueError:
        return _legacy_error(400, "a note is a JSON document")
    notes[key] = note
    return web.json_response(note)


async def _legacy_headers(request: web.Request, response: web.StreamResponse) -> None:
    # What old stacks really send; the proxy drops both from the errors it rewrites.
    response.headers["Server"] = "LegacyDocs/2.3 (Python)"
    response.headers["X-Powered-By"] = "legacy-framework/1.4"


def _legacy_error(status: int, message: str, **extra) -> web.Response:
    """The service's own error shape, which is no standard at all."""
    return web.json_response({"error": {"message": message, "code": status}, **extra}, status=status)


async def index(request: web.Request) -> web.Response:
    links = ["/hello", "/documents/42", "/notes/1", "/crash", "/slow?seconds=3", "/download?mb=10", "/echo"]
    items = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return web.Response(
        text=f"<!doctype html><title>Legacy docs service</title><h1>Legacy docs service</h1><ul>{items}</ul>",
        content_type="text/html",
    )


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello from the legacy docs service", "version": "2.3"})


async def get_document(request: web.Request) -> web.Response:
    if request.match_info["id"] != DOCUMENT_ID:
        return _legacy_error(404, f"document {request.match_info['id']} not found")
    document = {"id": 42, "title": "Quarterly report", "version": DOCUMENT_VERSION}
    return web.json_response(document, headers={"ETag": DOCUMENT_ETAG})


async def put_document(request: web.Request) -> web.Response:
    await _drain(request)
    if request.match_info["id"] != DOCUMENT_ID:
        return _legacy_error(404, f"document {request.match_info['id']} not found")
    # Someone else always got there first: every write is a conflict, If-Match or not.
    response = _legacy_error(409, f"Version conflict: document {DOCUMENT_ID} was modified",
                             currentVersion=DOCUMENT_VERSION)
    response.headers["ETag"] = DOCUMENT_ETAG
    return response


async def crash(request: web.Request) -> web.Response:
    return web.Response(status=500, text=TRACEBACK, content_type="text/plain")


async def slow(request: web.Request) -> web.Response:
    seconds = _number(request, "seconds", DEFAULT_SLOW_SECONDS)
    if seconds is None:
        return _legacy_error(400, "seconds must be a number")
    seconds = min(seconds, MAX_SLOW_SECONDS)
    await asyncio.sleep(seconds)
    return web.json_response({"message": f"answered after {seconds:g} s"})


async def download(request: web.Request) -> web.StreamResponse:
    size = _number(request, "mb", DEFAULT_DOWNLOAD_MIB)
    if size is None or size != int(size):
        return _legacy_error(400, "mb must be a whole number")
    mib = int(min(size, MAX_DOWNLOAD_MIB))
    response = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="demo-{mib}MiB.bin"',
    })
    response.content_length = mib * MIB
    await response.prepare(request)
    try:
        for _ in range(mib * MIB // len(CHUNK)):
            await response.write(CHUNK)  # waits while the client (or proxy) is slower than us
        await response.write_eof()
    except ConnectionError:
        log.info("download of %d MiB: the client went away", mib)
    return response


async def echo(request: web.Request) -> web.Response:
    return web.json_response({
        "method": request.method,
        "path": request.raw_path,
        "headers": [[name, value] for name, value in request.headers.items()],
        "body_length": await _drain(request),
    })


async def _drain(request: web.Request) -> int:
    """Read and count the request body without keeping it."""
    length = 0
    while chunk := await request.content.readany():
        length += len(chunk)
    return length


def _number(request: web.Request, name: str, default: float) -> float | None:
    """A non-negative finite query parameter, `default` when absent, None when bad."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
