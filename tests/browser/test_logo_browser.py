"""The brand's logo on the pages that say the upstream is down, in headless Chromium.

The upstream is a port that refuses connections, so every path gets the
proxy's own 502 page. A logo at a path (`logo_url: /static/logo.svg`) is asked
of that same dead upstream and breaks; a `logo_file` is in the page already.
"""

from __future__ import annotations

import pytest

from tests.browser.test_pages_browser import CHROMIUM, browser, visit  # noqa: F401  (browser: a fixture)
from tests.unit.test_logo import SVG, png

pytestmark = pytest.mark.browser
assert CHROMIUM  # imported for its module's skip when Chromium is missing


def config(brand: str) -> str:
    return f"""
listen: 127.0.0.1:0
brand: {{name: Acme, {brand}}}
upstreams:
  down: {{url: "http://127.0.0.1:1", connect_timeout: 2s}}
routes:
  - {{match: {{path_prefix: /}}, upstream: down}}
"""


async def logo_size(page) -> list[int]:
    return await page.evaluate("""() => {
        const logo = document.querySelector('.brand img');
        return [logo.complete ? 1 : 0, logo.naturalWidth, logo.naturalHeight];
    }""")


@pytest.mark.parametrize("content, size", [pytest.param(png(40, 20), [40, 20], id="png"),
                                           pytest.param(SVG, None, id="svg")])
async def test_a_logo_file_shows_with_the_upstream_down_and_costs_no_request(tmp_path, start_proxy, browser,  # noqa: F811
                                                                              content, size):
    logo = tmp_path / "logo"
    logo.write_bytes(content)
    proxy = await start_proxy(config(f"logo_file: {logo}"))
    seen = await visit(browser, proxy.url + "/reports")
    assert seen.response is not None and seen.response.status == 502
    complete, width, height = await logo_size(seen.page)
    assert complete and width > 0 and height > 0
    if size is not None:
        assert [width, height] == size
    assert [url for url in seen.requests if not url.startswith("data:")] == [proxy.url + "/reports"]
    assert seen.console == [], "the page's Content-Security-Policy must allow data: images"


async def test_a_logo_behind_the_upstream_breaks_with_it(start_proxy, browser):  # noqa: F811
    # Why logo_file exists: the logo at a path is asked of the upstream that is down.
    proxy = await start_proxy(config("logo_url: /static/logo.svg"))
    seen = await visit(browser, proxy.url + "/reports")
    assert seen.response is not None and seen.response.status == 502
    complete, width, _ = await logo_size(seen.page)
    assert complete and width == 0
    assert proxy.url + "/static/logo.svg" in seen.requests
