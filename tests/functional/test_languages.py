"""Errors in the client's language, through the running proxy: Accept-Language in, the page or problem out."""

from __future__ import annotations

import html
import json
import re

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml


# Past the request parser: once, on aiohttp's C parser.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


MESSAGE = "Version conflict: document 42 was modified"


def upstream() -> web.Application:
    async def conflict(request: web.Request) -> web.Response:
        return web.json_response({"message": MESSAGE, "currentVersion": 7}, status=409, headers={"ETag": '"v7-doc"'})

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    app = web.Application()
    app.router.add_get("/documents/42", conflict)
    app.router.add_get("/ok", ok)
    return app


async def fetch(url: str, **headers: str) -> tuple[int, "aiohttp.typedefs.LooseHeaders", str]:
    async with aiohttp.ClientSession(skip_auto_headers=("Accept",)) as client:
        async with client.get(url, headers={"X-Request-ID": "req-de-1", **headers}) as response:
            return response.status, response.headers, await response.text()


def visible_text(page: str) -> str:
    """What a reader sees of a page: the body's text, one line per block, tags and styles gone."""
    body = page.split("<body>", 1)[1]
    body = re.sub(r"</(p|h1|h2|li|header|section|footer)>|<br>", "\n", body)
    lines = (html.unescape(re.sub(r"<[^>]+>", "", line)).strip() for line in body.splitlines())
    return "\n".join(line for line in lines if line)


async def test_german_conflict_page(aiohttp_server, start_proxy, capsys):
    server = await aiohttp_server(upstream())
    proxy = await start_proxy(config_yaml(str(server.make_url("")), top="brand: {name: Acme Docs}"))
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    status, headers, page = await fetch(proxy.url + "/documents/42", Accept=browser_accept, **{"Accept-Language": "de"})
    assert status == 409
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Language"] == "de"
    assert headers.getall("Vary") == ["Accept", "Accept-Language"]
    assert headers["ETag"] == '"v7-doc"'
    assert '<html lang="de">' in page
    assert "<title>409 Konflikt · Acme Docs</title>" in page
    text = visible_text(page)
    assert text.splitlines()[:3] == ["Acme Docs", "Fehler 409", "Jemand anderes hat das geändert"]
    assert MESSAGE in text  # the upstream's own words, as it wrote them
    assert "Ihre Änderung wurde nicht gespeichert" in text
    assert "Anfrage-ID: req-de-1" in text
    for english in ("Someone else changed this", "Your change was not saved", "Request ID", "contact support"):
        assert english not in text
    with capsys.disabled():
        print("\n--- the German 409 page, as text ---\n" + text + "\n---")


async def test_the_proxys_own_502_in_japanese(aiohttp_server, start_proxy):
    proxy = await start_proxy(config_yaml("http://127.0.0.1:1", upstream="connect_timeout: 2s"))
    status, headers, body = await fetch(proxy.url + "/x", **{"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"})
    problem = json.loads(body)
    assert status == 502 and headers["Content-Type"] == "application/problem+json"
    assert problem["title"] == "不正なゲートウェイ"
    assert problem["detail"] == "このアドレスの背後にあるサービスが接続を拒否しました。"
    assert headers["Content-Language"] == "ja" and "Accept-Language" in headers.getall("Vary")


async def test_brand_lang_is_the_default_and_messages_override(aiohttp_server, start_proxy):
    server = await aiohttp_server(upstream())
    config = config_yaml(str(server.make_url("")), top="""
brand: {lang: fr}
messages:
  fr: {409.headline: "Quelqu’un a modifié ce document", 409.title: "Conflit de modification"}
""")
    proxy = await start_proxy(config)
    url = proxy.url + "/documents/42"
    status, headers, page = await fetch(url, Accept="text/html")  # no Accept-Language: brand.lang
    assert status == 409 and headers["Content-Language"] == "fr" and '<html lang="fr">' in page
    assert "<h1>Quelqu’un a modifié ce document</h1>" in page
    assert "<title>409 Conflit de modification · Ce service</title>" in page
    status, headers, page = await fetch(url, Accept="text/html", **{"Accept-Language": "en-US,en;q=0.9"})
    assert headers["Content-Language"] == "en" and "<h1>Someone else changed this</h1>" in page
    status, headers, body = await fetch(url, **{"Accept-Language": "it, *;q=0.1"})
    assert json.loads(body)["title"] == "Conflit de modification"  # JSON too, in the default language


async def test_a_response_passed_through_gets_no_language_headers(aiohttp_server, start_proxy):
    server = await aiohttp_server(upstream())
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    status, headers, body = await fetch(proxy.url + "/ok", **{"Accept-Language": "de"})
    assert (status, body) == (200, "fine")
    assert "Content-Language" not in headers and "Accept-Language" not in headers.getall("Vary", [])
