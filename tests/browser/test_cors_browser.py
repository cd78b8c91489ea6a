"""A page on another origin reads the proxy's errors in headless Chromium, or cannot without `cors`.

The page is served by a small aiohttp app on its own 127.0.0.1 port (its
origin); its script calls the proxy on another port, whose upstream refuses
connections, so every answer is the proxy's own 502 (or 503, in maintenance).
Chromium enforces CORS as it would for any site: without the headers, `fetch`
rejects and the script never sees the status.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiohttp import web

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("CI") is None:
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Page, async_playwright  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APP_PAGE = "<!doctype html><html lang=en><title>Orders</title><h1>Orders</h1></html>"
# What the page's script does with an answer: what any single-page app would read of an error.
READ = """async ([url, init]) => {
    try {
        const response = await fetch(url, init);
        return {status: response.status, contentType: response.headers.get("Content-Type"),
                requestId: response.headers.get("X-Request-ID"), retryAfter: response.headers.get("Retry-After"),
                body: await response.json()};
    } catch (error) {
        return {error: String(error)};
    }
}"""


@pytest.fixture
async def app_origin(aiohttp_server) -> str:
    """The single-page app's origin: a server of one HTML page."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=APP_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def proxy_url(start_proxy, app_origin) -> str:
    """The proxy: /cors/ with CORS for the app's origin, /maintenance/ too but in maintenance, /plain/ without."""
    proxy = await start_proxy(f"""
listen: 127.0.0.1:0
upstreams:
  down: {{url: "http://127.0.0.1:1", connect_timeout: 2s}}
routes:
  - name: maintenance
    match: {{path_prefix: /maintenance/}}
    upstream: down
    cors: {{allow_origins: ["{app_origin}"]}}
    maintenance: {{enabled: true, retry_after: 10m, message: Back at 14:00.}}
  - name: cors
    match: {{path_prefix: /cors/}}
    upstream: down
    cors: {{allow_origins: ["{app_origin}"], allow_credentials: true, preflight: proxy}}
  - name: plain
    match: {{path_prefix: /plain/}}
    upstream: down
""")
    return proxy.url


@pytest.fixture
async def app_page(app_origin):
    """The app's page, loaded in Chromium; each test's script runs in it."""
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = await browser.new_page()
        page.console_messages = []
        page.on("console", lambda message: page.console_messages.append(message.text))
        await page.goto(app_origin + "/")
        assert await page.inner_text("h1") == "Orders"
        yield page
        await browser.close()
    finally:
        await playwright.stop()


async def test_a_page_on_another_origin_reads_the_proxys_502(app_page: Page, proxy_url):
    seen = await app_page.evaluate(READ, [proxy_url + "/cors/orders/42", {}])
    assert seen["status"] == 502
    assert seen["contentType"] == "application/problem+json"
    problem = seen["body"]
    assert (problem["status"], problem["title"]) == (502, "Bad Gateway")
    assert seen["requestId"] is not None and len(seen["requestId"]) == 32, "X-Request-ID is exposed to the script"
    assert problem["request_id"] == seen["requestId"]


async def test_a_credentialed_write_preflighted_by_the_proxy_and_a_maintenance_503(app_page: Page, proxy_url):
    write = {"method": "PUT", "credentials": "include", "headers": {"Content-Type": "application/json"},
             "body": '{"quantity": 2}'}
    seen = await app_page.evaluate(READ, [proxy_url + "/cors/orders/42", write])
    assert seen["status"] == 502, seen
    assert seen["body"]["title"] == "Bad Gateway" and seen["body"]["request_id"] == seen["requestId"]

    seen = await app_page.evaluate(READ, [proxy_url + "/maintenance/orders", {}])
    assert seen["status"] == 503, seen
    assert seen["retryAfter"] == "600", "Retry-After is exposed to the script"
    assert seen["body"]["detail"] == "Back at 14:00."


async def test_without_cors_the_browser_hides_the_error_from_the_page(app_page: Page, proxy_url):
    seen = await app_page.evaluate(READ, [proxy_url + "/plain/orders/42", {}])
    assert seen == {"error": "TypeError: Failed to fetch"}
    assert any("blocked by CORS policy" in text and "Access-Control-Allow-Origin" in text
               for text in app_page.console_messages), app_page.console_messages
