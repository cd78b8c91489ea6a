"""Error pages in headless Chromium, fetched through the running proxy.

The proxy runs as a subprocess (the `start_proxy` fixture) in front of an
aiohttp upstream that answers a 409 with a JSON body and an ETag, a 409 whose
message is hostile HTML, and a 500 holding a stack trace; a second route points
at a port that refuses connections, so the proxy makes its own 502. Chromium
navigates as a person would, sending its own Accept header.

Screenshots go to test-artifacts/ at the repository root; their paths are
printed. Debian's /usr/bin/chromium is used, never a downloaded browser: without
it the module is skipped, except in CI (the CI variable set), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from proxy.http.pages import contrast

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("CI") is None:
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Browser, Page, Response, async_playwright  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REQUEST_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # as long as the ids the proxy makes
CONFLICT_MESSAGE = "Version conflict: document 42 was modified"
HOSTILE = '<script>alert(1)</script> then "><img src=x onerror=alert(1)>'
TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/legacy/app/views.py", line 88, in save_document\n'
    "    doc.save()\n"
    "orm.errors.OptimisticLockError: document 42 version 6 != 7\n"
)
# path, status, the page's h1
PAGES = {
    "409": ("/documents/42", 409, "Someone else changed this"),
    "409-hostile": ("/documents/7", 409, "Someone else changed this"),
    "500": ("/reports/run", 500, "Internal Server Error"),
    "502": ("/down/status", 502, "The service is not responding properly"),
}


@dataclass
class Site:
    url: str  # the proxy
    received: list[str]  # paths the upstream was asked for, favicon requests included


def upstream(received: list[str]) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler) -> web.StreamResponse:
        received.append(request.path)
        return await handler(request)

    async def conflict(request: web.Request) -> web.Response:
        body = {"message": CONFLICT_MESSAGE, "currentVersion": 7}
        return web.json_response(body, status=409, headers={"ETag": '"v7-doc"'})

    async def hostile(request: web.Request) -> web.Response:
        return web.json_response({"message": HOSTILE}, status=409)

    async def crash(request: web.Request) -> web.Response:
        return web.Response(status=500, text=TRACE)

    app = web.Application(middlewares=[record])
    app.router.add_get("/documents/42", conflict)
    app.router.add_get("/documents/7", hostile)
    app.router.add_get("/reports/run", crash)
    return app


@pytest.fixture
async def site(aiohttp_server, start_proxy) -> Site:
    """The proxy in front of the upstream above, and of a refused port for paths under /down/."""
    received: list[str] = []
    server = await aiohttp_server(upstream(received))
    proxy = await start_proxy(f"""
listen: 127.0.0.1:0
brand:
  name: Acme Docs
  accent_color: "#0b5fff"
  support_url: https://status.example.com/
upstreams:
  app: {{url: "{server.make_url('')}"}}
  down: {{url: "http://127.0.0.1:1", connect_timeout: 2s}}
routes:
  - name: down
    match: {{path_prefix: /down/}}
    upstream: down
  - name: app
    match: {{path_prefix: /}}
    upstream: app
""")
    return Site(proxy.url, received)


@pytest.fixture
async def browser():
    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
    finally:
        await playwright.stop()


@dataclass
class Visit:
    """One page load and everything the page did while loading."""

    page: Page
    response: Response | None = None
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # errors and warnings, uncaught exceptions
    dialogs: list[str] = field(default_factory=list)

    async def text(self) -> str:
        return await self.page.inner_text("body")


async def visit(browser: Browser, url: str, *, width: int = 1280, height: int = 800, settle: bool = True,
                locale: str | None = None) -> Visit:
    """Open `url` in a fresh context (`settle`: wait until the network is idle, so late requests are seen).

    `locale` is the browser's language, sent as its Accept-Language (Chromium's default: en-US).
    """
    context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                        extra_http_headers={"X-Request-ID": REQUEST_ID})
    page = await context.new_page()
    seen = Visit(page)

    def on_console(message) -> None:
        # Chromium reports the document's own error status: that one is the point of the page.
        own_status = message.location.get("url") == url and message.text.startswith(
            "Failed to load resource: the server responded with a status of ")
        if message.type in ("error", "warning") and not own_status:
            seen.console.append(f"{message.type}: {message.text} ({message.location.get('url')})")

    async def on_dialog(dialog) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.console.append(f"pageerror: {error}"))
    page.on("dialog", on_dialog)
    seen.response = await page.goto(url, wait_until="networkidle" if settle else "load")
    return seen


async def layout(page: Page) -> dict:
    return await page.evaluate("""() => {
        const code = document.querySelector('.support code');
        return {
            scroll: document.documentElement.scrollWidth,
            right: Math.max(...[...document.body.querySelectorAll('*')].map(e => e.getBoundingClientRect().right)),
            idLines: code.getClientRects().length,
            idHeight: code.getBoundingClientRect().height,
            idFontSize: parseFloat(getComputedStyle(code).fontSize),
            bar: document.querySelector('.brand').getBoundingClientRect().width,
            window: document.documentElement.clientWidth,
            brandLeft: document.querySelector('.brand strong').getBoundingClientRect().left,
            h1Left: document.querySelector('h1').getBoundingClientRect().left,
        };
    }""")


def hex_colour(css: str) -> str:
    """`rgb(13, 17, 23)` -> `#0d1117`."""
    channels = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert channels, css
    return "#" + "".join(f"{int(c):02x}" for c in channels.groups())


async def test_conflict_page_says_what_happened_and_carries_the_request_id(site, browser):
    seen = await visit(browser, site.url + PAGES["409"][0], settle=False)
    assert seen.response is not None and seen.response.status == 409
    headers = seen.response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["etag"] == '"v7-doc"' and headers["x-request-id"] == REQUEST_ID
    assert await seen.page.title() == "409 Conflict · Acme Docs"
    assert await seen.page.inner_text("h1") == "Someone else changed this"
    text = await seen.text()
    assert "ERROR 409" in text  # .status is upper-cased by CSS; inner_text shows what is seen
    assert CONFLICT_MESSAGE in text
    assert "Your change was not saved" in text
    assert f"Request ID: {REQUEST_ID}" in text
    support = seen.page.get_by_role("link", name="contact support")
    assert await support.get_attribute("href") == "https://status.example.com/"


@pytest.mark.parametrize("name", PAGES)
async def test_page_stands_alone_and_holds_from_320_to_1280_pixels(site, browser, name):
    """Nothing fetched or logged; one h1 and a language; no sideways scrolling; the request id on one line."""
    path, status, headline = PAGES[name]
    seen = await visit(browser, site.url + path)
    assert seen.response is not None and seen.response.status == status
    assert seen.requests == [site.url + path], "the page made requests besides itself"
    assert seen.console == [] and seen.dialogs == []
    # The browser's own favicon request is invisible to the page's events but not to the
    # upstream, and leaves after the page has loaded.
    await asyncio.sleep(0.5)
    assert site.received == ([] if name == "502" else [path])
    assert await seen.page.locator("h1").count() == 1
    assert await seen.page.inner_text("h1") == headline
    assert await seen.page.get_attribute("html", "lang") == "en"

    for width, height in ((320, 640), (1280, 800)):
        await seen.page.set_viewport_size({"width": width, "height": height})
        box = await layout(seen.page)
        assert box["scroll"] <= width, f"{width} px: the page scrolls sideways, {box['scroll']} px wide"
        assert box["right"] <= width, f"{width} px: an element ends at {box['right']} px"
        # The request id is read out and copied: it stays on one line.
        assert box["idLines"] == 1 and box["idHeight"] < 2 * box["idFontSize"], (width, box)
        # The accent bar spans the window; the brand lines up with the text below it.
        assert box["bar"] == box["window"] and box["brandLeft"] == box["h1Left"], (width, box)


async def test_hostile_upstream_detail_is_shown_as_text_and_runs_nothing(site, browser):
    path = PAGES["409-hostile"][0]
    seen = await visit(browser, site.url + path)
    assert seen.dialogs == [], "a script from the upstream body ran"
    assert await seen.page.inner_text(".detail") == HOSTILE
    assert await seen.page.get_by_text(HOSTILE, exact=True).is_visible()
    assert await seen.page.locator("img").count() == 0
    assert await seen.page.locator("script").count() == 0
    assert seen.requests == [site.url + path]  # no <img src=x> fetched
    assert seen.console == []


async def test_stack_trace_never_reaches_the_page(site, browser):
    seen = await visit(browser, site.url + PAGES["500"][0], settle=False)
    text = await seen.text()
    assert "Traceback" not in text and "/srv/legacy" not in text and "OptimisticLockError" not in text
    assert "Something went wrong on our side" in text


async def test_dark_mode_changes_the_colours_and_keeps_them_readable(site, browser):
    seen = await visit(browser, site.url + PAGES["409"][0], settle=False)
    colours = {}
    for scheme in ("light", "dark"):
        await seen.page.emulate_media(color_scheme=scheme)
        style = await seen.page.evaluate("""() => {
            const body = getComputedStyle(document.body), card = getComputedStyle(document.querySelector('.next'));
            const muted = getComputedStyle(document.querySelector('.support'));
            return {bg: body.backgroundColor, fg: body.color, card: card.backgroundColor, muted: muted.color};
        }""")
        colours[scheme] = {key: hex_colour(value) for key, value in style.items()}
        for text, background in (("fg", "bg"), ("fg", "card"), ("muted", "bg"), ("muted", "card")):
            ratio = contrast(colours[scheme][text], colours[scheme][background])
            assert ratio >= 4.5, f"{scheme}: {text} on {background} is {ratio:.2f}:1"
    assert colours["dark"]["bg"] != colours["light"]["bg"]
    assert colours["dark"]["fg"] != colours["light"]["fg"]


@pytest.mark.parametrize("name", ["409", "502"])
async def test_screenshots(site, browser, name, capsys):
    """Light and dark, 1280 and 320 pixels wide, for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    seen = await visit(browser, site.url + PAGES[name][0], settle=False)
    written = []
    for scheme in ("light", "dark"):
        await seen.page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 800), (320, 640)):
            await seen.page.set_viewport_size({"width": width, "height": height})
            target = ARTIFACTS / f"page-{name}-{scheme}-{width}.png"
            await seen.page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 0
            written.append(target)
    with capsys.disabled():
        print("", *(f"screenshot: {path}" for path in written), sep="\n")
