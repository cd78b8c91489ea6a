"""`errorproxy demo`: a made-up legacy service with the proxy in front, in one process.

The service answers the way old backends do, with nothing to say about
standards: a 409 in its own JSON shape, a 500 whose body is a stack trace, a
slow endpoint, a large download. The proxy runs the embedded config in front
of it, so what a user sees through the proxy is what `errorproxy run
--upstream URL` would give them.

    GET  /documents/42   200  ETag: "v7-doc"
    PUT  /documents/42   409  {"error": {"message": "Version conflict: ..."}, "currentVersion": 7}
    GET  /crash          500  Traceback (most recent call last): ...
    GET  /notes/1        200  no ETag;  PUT /notes/1: 200, whatever was there before (no concurrency control)

The proxy also guards `/guarded/...` (the same service, prefix stripped) with
its conflict guard: `/guarded/notes/1` gets ETags, If-Match and 412, where
`/notes/1` lets the last writer win.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os

from aiohttp import web

from ..core.settings import Concurrency, Match, Route
from ..http.handler import Proxy
from ..config.loader import ConfigError, load
from ..ops.server import serve

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
# Ctrl-C should stop the demo promptly, even with a 4 GiB download in flight;
# a real deployment keeps the configured drain time.
SHUTDOWN_SECONDS = 3.0

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


def _address(text: str, flag: str) -> tuple[str, int]:
    """`127.0.0.1:9000` -> ("127.0.0.1", 9000); ConfigError naming `flag` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(flag, [f"{json.dumps(text)} is not HOST:PORT (e.g. 127.0.0.1:9000)"])
    return host, int(port)


def _reachable(address: tuple) -> str:
    """The URL a local client uses for a bound address (0.0.0.0 is not somewhere to connect to)."""
    host, port = address[0], address[1]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def banner(proxy_url: str, upstream_url: str) -> str:
    """What to try, and what each try shows. Keep it true to what the proxy does:
    tests/functional/test_cli.py checks these claims against a running demo."""
    p = proxy_url
    put = "-X PUT -H 'Content-Type: application/json' -d '{\"title\": \"Draft 2\", \"version\": 6}'"
    tries = [
        (f"curl -i {p}/hello", "200 JSON, streamed through as the service sent it"),
        (f"curl -i {p}/documents/42", f"200 with ETag: {DOCUMENT_ETAG}"),
        (f"curl -i {p}/documents/42 {put}",
         "409 as an RFC 9457 problem: the service's own message as detail,"
         f" its ETag {DOCUMENT_ETAG} kept (header and current_etag)"),
        (f"curl -i {p}/documents/42 -X DELETE", "405 problem, the service's Allow header kept"),
        (f"curl -i {p}/crash", "500 problem; the stack trace is logged with the request id, never sent"),
        (f"curl -i {p}/crash -H 'Accept: text/html'", "the same error as the HTML page a browser gets"),
        (f"curl -i '{p}/slow?seconds=3'", f"200 after 3 seconds (at most {MAX_SLOW_SECONDS:g})"),
        (f"curl -o /dev/null '{p}/download?mb=1024'",
         f"1 GiB streamed through, never buffered (default {DEFAULT_DOWNLOAD_MIB}, at most {MAX_DOWNLOAD_MIB} MiB)"),
        (f"curl -i {p}/echo -d 'hello'", "what the service received: method, path, headers, body length"),
        (f"curl -i {p}/notes/1 -X PUT -d '{{\"id\": 1, \"items\": [\"eggs\"]}}'",
         "200: the service has no concurrency control, the last writer wins silently"),
        (f"curl -i {p}/guarded/notes/1", "200 with a strong ETag the service never sent (the conflict guard's)"),
        (f"curl -i {p}/guarded/notes/1 -X PUT -d '{{\"id\": 1, \"items\": []}}'",
         "428: a guarded write must say which version it changes (If-Match)"),
        (f"curl -i {p}/guarded/notes/1 -X PUT -H 'If-Match: \"stale\"' -d '{{\"id\": 1, \"items\": []}}'",
         "412 with the current ETag (header and current_etag): fetch, reapply, retry with If-Match"),
    ]
    lines = [
        "errorproxy demo",
        f"  errorproxy      {p}  (embedded config: every request goes to the legacy service;",
        "                  /guarded/... too, through the conflict guard)",
        f"  legacy service  {upstream_url}  (a made-up old backend with its own error shapes)",
        "",
        "Try, through the proxy:",
    ]
    for command, result in tries:
        lines += [f"  {command}", f"      -> {result}"]
    lines += [
        "",
        f"Compare with the service itself: curl -i {upstream_url}/documents/42 {put}",
        f"In a browser: {p}/ (links to every endpoint), {p}/crash, {p}/documents/7",
        "",
        "Every 4xx/5xx becomes one shape, picked from the Accept header: RFC 9457",
        "problem details (application/problem+json) for API clients, an HTML page for",
        "browsers. Successful responses pass through untouched (with an ETag added on /guarded/).",
        "",
        "Ctrl-C stops both.",
    ]
    return "\n".join(lines)


async def run_demo(listen: str, upstream_listen: str) -> None:
    """Serve the legacy service on `upstream_listen` and the proxy on `listen`
    until SIGTERM/SIGINT.

    Raises OSError when a port cannot be bound, ConfigError for a bad address.
    """
    _address(listen, "--listen")  # before anything is bound, and with the flag's name
    host, port = _address(upstream_listen, "--upstream-listen")
    runner = web.AppRunner(legacy_app(), handle_signals=False, shutdown_timeout=1.0,
                           access_log=logging.getLogger("errorproxy.demo.legacy"),
                           access_log_format='legacy service: "%r" %s %b bytes')
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        upstream_url = _reachable(runner.addresses[0])
        # ERRORPROXY_ADMIN moves the admin listener, as for `errorproxy run` (two demos side by side).
        settings = load(None, upstream=upstream_url, listen=listen, admin=os.environ.get("ERRORPROXY_ADMIN") or None)
        default = settings.routes[0]
        guarded = Route(name="guarded", match=Match(path_prefix="/guarded/"), upstream=default.upstream,
                        strip_prefix="/guarded", errors=default.errors, concurrency=Concurrency())
        settings = dataclasses.replace(settings, routes=(guarded, *settings.routes))
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, shutdown_timeout=SHUTDOWN_SECONDS)
        )

        def ready(addresses: list[str]) -> None:
            print(banner(_reachable(_split_url(addresses[0])), upstream_url), flush=True)

        await serve(Proxy(settings), ready=ready)
    finally:
        await runner.cleanup()


def _split_url(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)
