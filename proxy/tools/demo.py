"""`errorproxy demo`: the made-up legacy service (`legacy_service`) with the proxy in front, in one process.

The proxy runs the embedded config in front of the service, so what a user
sees through the proxy is what `errorproxy run --upstream URL` would give
them: a 409 in the service's own JSON shape made actionable, a stack trace
replaced, a slow endpoint, a large download.

The proxy also guards `/guarded/...` (the same service, prefix stripped) with
its conflict guard: `/guarded/notes/1` gets ETags, If-Match and 412, where
`/notes/1` lets the last writer win.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from aiohttp import web

from ..config.loader import ConfigError, load
from ..core.guard_settings import Concurrency
from ..core.settings import Match, Route
from ..http.handler import Proxy
from ..ops.server import serve
from .legacy_service import DEFAULT_DOWNLOAD_MIB, DOCUMENT_ETAG, MAX_DOWNLOAD_MIB, MAX_SLOW_SECONDS, legacy_app

# Ctrl-C should stop the demo promptly, even with a 4 GiB download in flight;
# a real deployment keeps the configured drain time.
SHUTDOWN_SECONDS = 3.0

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
