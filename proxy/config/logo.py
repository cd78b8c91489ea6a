"""The brand's logo, inlined: `brand.logo_file`, or a `data:` URL in `brand.logo_url`.

A logo at `/static/logo.svg` is fetched through the proxy, from the upstream,
so it breaks on exactly the pages that say the upstream is down (502, 503,
504). A logo read from a file when the config is loaded, and written into each
page as a `data:` URL, needs no request at all.

Only PNG and SVG are taken, by their content, not their name: a PNG by its
signature and IHDR chunk, an SVG by its root element, `<svg>` in the SVG
namespace (without it a browser will not draw the file as an image). At most
64KiB, so that every page stays small.

The built-in pages show the logo in an `<img>`. There, browsers run no script
in an SVG and load nothing it refers to (images, fonts, stylesheets), so an
SVG is inert in that place whatever it holds. An SVG that holds a script, an
event handler, a `<foreignObject>` or a reference outside itself is still
refused, for two reasons: what it needs would not work in the page (the logo
would not look as it does when opened as a file), and a `templates_dir` page
may place the logo elsewhere than in an `<img>`. A DTD's entities are refused
too, before the XML is parsed, so the parser never expands one.

>>> read_logo_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>')
'data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxIDEiLz4='
>>> read_logo_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
Traceback (most recent call last):
proxy.config.logo.LogoProblem: is an SVG with a <script>: a logo is shown as an image, where scripts do not run
"""

from __future__ import annotations

import base64
import re
import urllib.parse
import xml.etree.ElementTree as ElementTree
from typing import Any

from .problems import Checker

MAX_LOGO = 64 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_HTTP_OR_PATH = re.compile(r"(?:https?://[^\s\"'<>]+|/[^\s\"'<>]*)")
_DATA_URL = re.compile(r"data:(?P<type>[a-z0-9.+-]+/[a-z0-9.+-]+)(?P<params>(?:;[^,;]*)*),(?P<data>.*)",
                       re.IGNORECASE | re.DOTALL)
_TYPES = {"image/png", "image/svg+xml"}
_REFERENCE_ATTRIBUTES = {"href", "src"}  # `href` and `xlink:href` by their local name
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*(?!#|data:)|@import", re.IGNORECASE)


class LogoProblem(ValueError):
    """Why a logo cannot be used; the text completes a problem line after the path and value."""


def check_logo(check: Checker, path: str, brand: dict[str, str]) -> None:
    """Check `logo_url` and read `logo_file` in `brand`, which then has the file's `data:` URL as its `logo_url`."""
    url, file = brand.get("logo_url"), brand.get("logo_file")
    if url and file:
        check.fail(f"{path}.logo_file", file, "is set, and so is logo_url: give one of them")
    elif url:
        try:
            brand["logo_url"] = read_logo_url(url)
        except LogoProblem as exc:
            check.fail(f"{path}.logo_url", url, str(exc))
    elif file:
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_LOGO + 1)
        except OSError as exc:
            check.fail(f"{path}.logo_file", file, f"cannot be read ({exc.strerror or exc})")
            return
        try:
            brand["logo_url"] = read_logo_bytes(data)
        except LogoProblem as exc:
            check.fail(f"{path}.logo_file", file, str(exc))


def read_logo_url(url: str) -> str:
    """`url` if it is http(s) or a /path; a `data:` URL checked as a file would be, and re-encoded in base64.

    >>> read_logo_url("/static/logo.svg")
    '/static/logo.svg'
    >>> read_logo_url("data:image/svg+xml,%3Csvg%20xmlns='http://www.w3.org/2000/svg'/%3E")
    'data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnLz4='
    >>> read_logo_url("javascript:alert(1)")
    Traceback (most recent call last):
    proxy.config.logo.LogoProblem: is not an http(s) URL, a path starting with / or a data:image/png or data:image/svg+xml URL
    """
    if _HTTP_OR_PATH.fullmatch(url):
        return url
    data_url = _DATA_URL.fullmatch(url)
    if data_url is None or data_url["type"].lower() not in _TYPES:
        raise LogoProblem("is not an http(s) URL, a path starting with / or a data:image/png or data:image/svg+xml URL")
    if ";base64" in data_url["params"].lower():
        try:
            data = base64.b64decode(data_url["data"].strip(), validate=True)
        except ValueError:
            raise LogoProblem("is a data: URL whose base64 does not decode") from None
    else:
        data = urllib.parse.unquote_to_bytes(data_url["data"])
    read = read_logo_bytes(data)
    if not read.startswith(f"data:{data_url['type'].lower()};"):
        raise LogoProblem(f"is a data: URL that says {data_url['type']} and holds {read[5:read.index(';')]}")
    return read


def read_logo_bytes(data: bytes) -> str:
    """A `data:` URL of `data` when it is a PNG or SVG logo within the size limit; LogoProblem otherwise."""
    if len(data) > MAX_LOGO:
        raise LogoProblem("is larger than 64KiB: a logo is a few KiB (compress it, or serve it at a URL with logo_url)")
    if data.startswith(PNG_SIGNATURE):
        if data[12:16] != b"IHDR":
            raise LogoProblem("starts as a PNG, but is not one (no IHDR chunk where it must be)")
        kind = "image/png"
    elif data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        _check_svg(data)
        kind = "image/svg+xml"
    else:
        raise LogoProblem("is not a PNG or SVG image" if data else "is empty, not a PNG or SVG image")
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _check_svg(data: bytes) -> None:
    if b"<!ENTITY" in data:  # before parsing: the parser would expand them
        raise LogoProblem("is an SVG that declares XML entities: refused (write the SVG without them)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise LogoProblem(f"is not a PNG or SVG image (not well-formed XML: {exc})") from None
    if root.tag != f"{{{SVG_NAMESPACE}}}svg":
        if root.tag == "svg":
            raise LogoProblem(f'is an <svg> without xmlns="{SVG_NAMESPACE}": browsers do not draw it as an image')
        raise LogoProblem(f"is XML whose root is <{_local(root.tag)}>, not an SVG image")
    for element in root.iter():
        name = _local(element.tag)
        if name in ("script", "foreignObject"):
            raise LogoProblem(f"is an SVG with a <{name}>: a logo is shown as an image, where "
                              + ("scripts do not run" if name == "script" else "HTML inside SVG is not drawn"))
        for attribute, value in element.attrib.items():
            local = _local(attribute)
            if local.lower().startswith("on"):
                raise LogoProblem(f"is an SVG with an event handler ({local}): a logo is shown as an image, "
                                  "where scripts do not run")
            if (local in _REFERENCE_ATTRIBUTES and not value.strip().startswith(("#", "data:"))) or (
                    local == "style" and _CSS_URL.search(value)):
                raise LogoProblem(f"is an SVG that refers to {value[:60]!r}: a logo shown as an image loads "
                                  "nothing from outside itself (inline it, or use a data: URL)")
        if name == "style" and _CSS_URL.search(element.text or ""):
            raise LogoProblem("is an SVG whose <style> loads from outside itself: a logo shown as an image "
                              "loads nothing (inline it)")


def _local(name: Any) -> str:
    """`{namespace}name` -> `name`."""
    return str(name).rpartition("}")[2]
