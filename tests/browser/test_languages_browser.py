"""The error pages in every built-in language, in headless Chromium at 320 pixels.

Each language's browser (its locale, so its own Accept-Language) loads the
409 and the 503 page through the running proxy. German runs long, Japanese
and Chinese have no spaces to break at: none of them may scroll sideways on
a 320-pixel phone, and `<html lang>` must name the language the page is in.
Screenshots go to test-artifacts/ (lang-<language>-<status>-<width>.png).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from aiohttp import web

from proxy.core.language import LANGUAGES
from proxy.http.i18n import Catalog
from tests.browser.test_pages_browser import ARTIFACTS, browser, layout, visit  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser

# The browser's locale for each language: what a reader of it has set.
LOCALES = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "pt": "pt-BR", "ja": "ja-JP", "zh-Hans": "zh-CN"}
PAGES = {409: "/documents/42", 503: "/reports/busy"}
FONT_LANGUAGES = {"ja": "ja", "zh-Hans": "zh-cn"}  # fontconfig's name for each script that needs its own font


def has_font(language: str) -> bool:
    """Whether fontconfig knows a font for `language` (.ci/run installs fonts-noto-cjk when not)."""
    if language not in FONT_LANGUAGES:
        return True
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list", f":lang={FONT_LANGUAGES[language]}"], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def upstream() -> web.Application:
    async def conflict(request: web.Request) -> web.Response:
        return web.json_response({"currentVersion": 7}, status=409, headers={"ETag": '"v7-doc"'})

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="overloaded", headers={"Retry-After": "120"})

    app = web.Application()
    app.router.add_get(PAGES[409], conflict)
    app.router.add_get(PAGES[503], busy)
    return app


@pytest.fixture
async def site(aiohttp_server, start_proxy) -> str:
    server = await aiohttp_server(upstream())
    proxy = await start_proxy(f"""
listen: 127.0.0.1:0
brand:
  name: Acme Docs
  support_url: https://status.example.com/
upstreams:
  app: {{url: "{server.make_url('')}"}}
routes:
  - name: app
    match: {{path_prefix: /}}
    upstream: app
""")
    return proxy.url


@pytest.mark.parametrize("language", LANGUAGES)
async def test_pages_in_each_language_fit_320_pixels(site, browser, language, capsys):  # noqa: F811
    # Without one, the text is boxes: the layout would be measured on the wrong glyphs.
    assert has_font(language), f"no font for {language}: apt-get install fonts-noto-cjk"
    ARTIFACTS.mkdir(exist_ok=True)
    catalog = Catalog(language)
    headlines = {409: catalog.pgettext("409.headline", "Someone else changed this"),
                 503: catalog.pgettext("503.headline", "Temporarily unavailable")}
    written = []
    for status, path in PAGES.items():
        seen = await visit(browser, site + path, width=320, height=640, locale=LOCALES[language])
        assert seen.response is not None and seen.response.status == status
        sent = await seen.response.request.all_headers()
        assert sent["accept-language"].startswith(LOCALES[language])
        assert seen.response.headers["content-language"] == language
        assert await seen.page.get_attribute("html", "lang") == language
        assert await seen.page.inner_text("h1") == headlines[status]
        assert seen.console == [] and seen.dialogs == []
        if status == 503:
            when = catalog.npgettext("retry.minutes", "in %(num)s minute", "in %(num)s minutes", 2) % {"num": 2}
            assert when in await seen.text()
        for width, height in ((320, 640), (1280, 800)):
            await seen.page.set_viewport_size({"width": width, "height": height})
            box = await layout(seen.page)
            assert box["scroll"] <= width, f"{language} {status} at {width} px: {box['scroll']} px wide"
            assert box["right"] <= width, f"{language} {status} at {width} px: an element ends at {box['right']} px"
            assert box["idLines"] == 1, f"{language} {status} at {width} px: the request id wraps"
            target = ARTIFACTS / f"lang-{language}-{status}-{width}.png"
            await seen.page.screenshot(path=str(target), full_page=True)
            written.append(target)
    with capsys.disabled():
        print("", *(f"screenshot: {path}" for path in written), sep="\n")
