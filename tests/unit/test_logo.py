"""The brand's logo inlined as a data: URL: `brand.logo_file`, `data:` in `brand.logo_url`, and their problems."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

import pytest

from proxy.config.loader import ConfigError, from_text
from proxy.config.logo import MAX_LOGO
from proxy.config.values import show
from proxy.core.problem import Problem
from proxy.http.pages import Pages

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#0b5fff"/></svg>'


def png(width: int = 2, height: int = 1) -> bytes:
    """A real PNG: signature, IHDR, one IDAT of RGB rows, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x0b\x5f\xff" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def config(brand: str) -> str:
    return f"""
brand: {brand}
upstreams: {{app: "http://127.0.0.1:9000"}}
routes: [{{match: {{path_prefix: /}}, upstream: app}}]
"""


def brand_problems(brand: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_text(config(brand), "c.yaml")
    return caught.value.problems


def logo_file(tmp_path: Path, content: bytes, name: str = "logo") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    "content, kind",
    [
        pytest.param(png(), "image/png", id="png"),
        pytest.param(SVG, "image/svg+xml", id="svg"),
        pytest.param(b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
                     b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<!-- exported -->\n' + SVG,
                     "image/svg+xml", id="svg-as-editors-write-it"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
                     b'<defs><path id="p" d="M0 0h1v1z"/></defs><use xlink:href="#p"/>'
                     b'<image href="data:image/png;base64,AAAA"/><rect style="fill: url(#p)"/></svg>',
                     "image/svg+xml", id="svg-referring-only-to-itself"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + png()[8:] + b"\0" * (MAX_LOGO - len(png())), "image/png", id="exactly-64KiB"),
    ],
)
def test_a_logo_file_is_inlined_as_a_data_url(tmp_path, content, kind):
    path = logo_file(tmp_path, content, "logo.bin")  # by content, not by name
    settings = from_text(config(f"{{name: Acme, logo_file: {path}}}"), "c.yaml")
    url = settings.brand["logo_url"]
    prefix = f"data:{kind};base64,"
    assert url.startswith(prefix) and base64.b64decode(url[len(prefix):]) == content


@pytest.mark.parametrize(
    "content, problem",
    [
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF", "is not a PNG or SVG image", id="jpeg"),
        pytest.param(b"", "is empty, not a PNG or SVG image", id="empty"),
        pytest.param(b"\0" * (MAX_LOGO + 1), "is larger than 64KiB: a logo is a few KiB (compress it, or serve it at a URL "
                     "with logo_url)", id="too-large"),
        pytest.param(b"\x89PNG\r\n\x1a\nnot a chunk", "starts as a PNG, but is not one (no IHDR chunk where it must be)",
                     id="png-signature-alone"),
        pytest.param(b"<svg><rect/></svg>", 'is an <svg> without xmlns="http://www.w3.org/2000/svg": browsers do not draw '
                     "it as an image", id="svg-without-namespace"),
        pytest.param(b"<html><body>logo</body></html>", "is XML whose root is <html>, not an SVG image", id="html"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'><g></svg>", "is not a PNG or SVG image (not well-formed "
                     "XML: mismatched tag: line 1, column 45)", id="broken-xml"),
        pytest.param(SVG.replace(b"<rect", b"<script>alert(1)</script><rect"), "is an SVG with a <script>: a logo is "
                     "shown as an image, where scripts do not run", id="script"),
        pytest.param(SVG.replace(b"<rect", b'<rect onclick="alert(1)"'), "is an SVG with an event handler (onclick): a "
                     "logo is shown as an image, where scripts do not run", id="event-handler"),
        pytest.param(SVG.replace(b"<rect", b"<foreignObject><p>x</p></foreignObject><rect"), "is an SVG with a "
                     "<foreignObject>: a logo is shown as an image, where HTML inside SVG is not drawn", id="foreign-object"),
        pytest.param(SVG.replace(b"<rect", b'<image href="https://cdn.example.com/a.png"/><rect'), "is an SVG that refers "
                     "to 'https://cdn.example.com/a.png': a logo shown as an image loads nothing from outside itself "
                     "(inline it, or use a data: URL)", id="external-image"),
        pytest.param(SVG.replace(b"<svg ", b'<svg xmlns:xlink="http://www.w3.org/1999/xlink" ').replace(
                     b"<rect", b'<use xlink:href="sprites.svg#logo"/><rect'), "is an SVG that refers to 'sprites.svg#logo':"
                     " a logo shown as an image loads nothing from outside itself (inline it, or use a data: URL)",
                     id="external-xlink-href"),
        pytest.param(SVG.replace(b"<rect", b"<style>@import url(https://fonts.example.com/a.css);</style><rect"),
                     "is an SVG whose <style> loads from outside itself: a logo shown as an image loads nothing "
                     "(inline it)", id="style-import"),
        pytest.param(b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaa">]>' + SVG, "is an SVG that declares XML "
                     "entities: refused (write the SVG without them)", id="entities"),
    ],
)
def test_logo_file_problems_name_the_path_and_the_file(tmp_path, content, problem):
    path = logo_file(tmp_path, content)
    assert brand_problems(f"{{logo_file: {path}}}") == [f'brand.logo_file: "{path}" {problem}']


def test_a_missing_logo_file(tmp_path):
    path = tmp_path / "nope.svg"
    assert brand_problems(f"{{logo_file: {path}}}") == [
        f'brand.logo_file: "{path}" cannot be read (No such file or directory)']


def test_logo_file_and_logo_url_together(tmp_path):
    path = logo_file(tmp_path, SVG)
    assert brand_problems(f"{{logo_file: {path}, logo_url: /static/logo.svg}}") == [
        f'brand.logo_file: "{path}" is set, and so is logo_url: give one of them']


SVG_BASE64 = base64.b64encode(SVG).decode()


@pytest.mark.parametrize(
    "url, kept",
    [
        pytest.param("/static/logo.svg", "/static/logo.svg", id="path"),
        pytest.param("https://cdn.example.com/logo.png", "https://cdn.example.com/logo.png", id="https"),
        pytest.param(f"data:image/svg+xml;base64,{SVG_BASE64}", f"data:image/svg+xml;base64,{SVG_BASE64}", id="base64"),
        pytest.param("data:image/svg+xml;charset=utf-8," + SVG.decode().replace("#", "%23"),
                     f"data:image/svg+xml;base64,{SVG_BASE64}", id="text-made-base64"),
        pytest.param("DATA:IMAGE/PNG;BASE64," + base64.b64encode(png()).decode(),
                     "data:image/png;base64," + base64.b64encode(png()).decode(), id="any-case"),
    ],
)
def test_logo_url_may_be_a_data_url(url, kept):
    settings = from_text(config(f"{{logo_url: '{url}'}}"), "c.yaml")
    assert settings.brand["logo_url"] == kept


@pytest.mark.parametrize(
    "url, problem",
    [
        pytest.param("javascript:alert(1)", "is not an http(s) URL, a path starting with / or a data:image/png or "
                     "data:image/svg+xml URL", id="javascript"),
        pytest.param("data:text/html;base64,PHNjcmlwdD4=", "is not an http(s) URL, a path starting with / or a "
                     "data:image/png or data:image/svg+xml URL", id="html"),
        pytest.param("data:image/png;base64,!!!", "is a data: URL whose base64 does not decode", id="bad-base64"),
        pytest.param(f"data:image/png;base64,{SVG_BASE64}", "is a data: URL that says image/png and holds image/svg+xml",
                     id="type-mismatch"),
        pytest.param("data:image/svg+xml,%3Csvg%20xmlns='http://www.w3.org/2000/svg'%3E%3Cscript/%3E%3C/svg%3E",
                     "is an SVG with a <script>: a logo is shown as an image, where scripts do not run", id="svg-script"),
        pytest.param("logo.svg", "is not an http(s) URL, a path starting with / or a data:image/png or data:image/svg+xml "
                     "URL", id="relative"),
    ],
)
def test_logo_url_problems(url, problem):
    assert brand_problems(f"{{logo_url: \"{url}\"}}") == [f"brand.logo_url: {show(url)} {problem}"]


def test_the_page_carries_the_logo_and_its_policy_allows_data_images(tmp_path):
    settings = from_text(config(f"{{name: Acme, logo_file: {logo_file(tmp_path, png())}}}"), "c.yaml")
    html = Pages(settings.brand).render(Problem(status=502, instance="/x", request_id="r")).decode()
    assert f'<img src="{settings.brand["logo_url"]}" alt="Acme">' in html
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert policy is not None
    img_src = next(d.split()[1:] for d in policy.group(1).split(";") if d.split()[:1] == ["img-src"])
    assert "data:" in img_src
