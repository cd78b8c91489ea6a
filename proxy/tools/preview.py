"""Error pages without a running proxy: `errorproxy preview`.

A preview is the response the proxy would send for a problem of its own making
that carries no upstream detail: the status's default detail, a fixed sample
request id, the given path as `instance`. With a config, the route a GET of
that path matches (hosts aside) picks the template, the JSON style and whether
the format is negotiated or fixed, as it would at request time.

>>> response = preview(404, accept="text/plain", path="/missing")
>>> response.body.decode().splitlines()[0]
'404 Not Found'
>>> headers_text(response).splitlines()[0]
'HTTP/1.1 404 Not Found'

`write_all` renders every sample status in every format, with an `index.html`
gallery to open in a browser.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..core.negotiation import HTML, PROBLEM, TEXT, Choice
from ..core.problem import Problem, default_detail
from ..core.routing import Router, normalize_path
from ..core.settings import Route, Settings
from ..core.status import reason
from ..http.pages import SAMPLE_STATUSES, Pages
from ..http.render import ProblemResponse, Shape, render

SAMPLE_REQUEST_ID = "7f9c2b4e1d8a4c6f9e3b5a7d0c1e2f3a"
# The gallery adds statuses that have no page of their own, to show the
# class-level fallbacks (4xx.html, 5xx.html) with an unregistered reason.
GALLERY_STATUSES = tuple(sorted({*SAMPLE_STATUSES, 418, 599}))
FORMATS: dict[str, tuple[str, Choice]] = {"html": ("html", HTML), "json": ("json", PROBLEM), "text": ("txt", TEXT)}


class PreviewError(ValueError):
    """A preview cannot be made; the message is one line for the user."""


def parse_status(text: str) -> int:
    """An error status from the command line.

    >>> parse_status("409")
    409
    >>> parse_status("200")
    Traceback (most recent call last):
    ...
    proxy.tools.preview.PreviewError: STATUS must be an error status from 400 to 599, not '200'
    """
    if text.strip().isdigit() and 400 <= int(text) <= 599:
        return int(text)
    raise PreviewError(f"STATUS must be an error status from 400 to 599, not {text!r}")


def sample_problem(status: int, path: str = "/") -> Problem:
    return Problem(status=status, detail=default_detail(status), instance=path, request_id=SAMPLE_REQUEST_ID)


def _route(settings: Settings | None, path: str) -> Route | None:
    if settings is None:
        return None
    return Router(settings.routes).match("", normalize_path(path), "GET")


def preview(status: int, *, accept: str | None = None, path: str = "/", settings: Settings | None = None,
            choice: Choice | None = None) -> ProblemResponse:
    """The response for a sample problem; `choice` forces a format, else it comes from config and `accept`."""
    route = _route(settings, path)
    if settings is None:
        shape = Shape()
    else:
        pages = Pages(settings.brand, settings.templates_dir, settings.messages)
        shape = (Shape(route.errors, pages, route.template) if route is not None
                 else Shape(settings.errors, pages))
    # In the route's shape whatever its `origins`: a preview shows what the shape looks like.
    return render(sample_problem(status, path), shape, origin="upstream", accept=accept, choice=choice, path=path)


def headers_text(response: ProblemResponse) -> str:
    """The status line and headers as `curl -i` shows them (without Date, which the server adds)."""
    lines = [f"HTTP/1.1 {response.status} {reason(response.status)}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines.append(f"Content-Length: {len(response.body)}")
    return "\n".join(lines) + "\n"


def write_all(out: Path, *, path: str = "/", settings: Settings | None = None) -> list[Path]:
    """Every gallery status in every format under `out`, then `index.html`; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for status in GALLERY_STATUSES:
        for extension, choice in FORMATS.values():
            target = out / f"{status}.{extension}"
            target.write_bytes(preview(status, path=path, settings=settings, choice=choice).body)
            written.append(target)
    index = out / "index.html"
    index.write_text(gallery(settings), encoding="utf-8")
    written.append(index)
    return written


def gallery(settings: Settings | None = None) -> str:
    """A self-contained page (no script, nothing fetched but the files beside it) showing every page."""
    name = html.escape(dict(settings.brand).get("name", "") if settings is not None else "") or "built-in brand"
    cards = []
    for status in GALLERY_STATUSES:
        title = html.escape(f"{status} {reason(status)}")
        links = " · ".join(f'<a href="{status}.{extension}">{label}</a>' for label, (extension, _) in FORMATS.items())
        cards.append(
            f'<section id="s{status}">\n<h2>{title}</h2>\n<p>{links}</p>\n<div class="frames">'
            f'<iframe src="{status}.html" title="{title}, wide" class="wide" sandbox loading="lazy"></iframe>'
            f'<iframe src="{status}.html" title="{title}, 320 pixels wide" class="narrow" sandbox loading="lazy"></iframe>'
            "</div>\n</section>"
        )
    toc = " ".join(f'<a href="#s{status}">{status}</a>' for status in GALLERY_STATUSES)
    return _GALLERY.format(name=name, toc=toc, cards="\n".join(cards))


_GALLERY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>errorproxy error pages: {name}</title>
<style>
:root {{ color-scheme: light dark; }}
body {{ margin: 0 auto; max-width: 80rem; padding: 1rem 1.25rem 3rem; font: 16px/1.5 system-ui, sans-serif; }}
nav a {{ margin-right: .5rem; }}
section {{ margin-top: 2rem; }}
h2 {{ margin: 0 0 .25rem; font-size: 1.15rem; }}
.frames {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
iframe {{ height: 36rem; border: 1px solid #8b949e; border-radius: 6px; background: Canvas; }}
.wide {{ flex: 1 1 30rem; min-width: 20rem; }}
.narrow {{ flex: 0 0 320px; width: 320px; }}
</style>
</head>
<body>
<h1>Error pages: {name}</h1>
<p>Each page as a browser gets it, wide and 320&nbsp;pixels wide, with the JSON and text an API client gets.
Regenerate with <code>errorproxy preview --all --out DIR</code>.</p>
<nav>{toc}</nav>
{cards}
</body>
</html>
"""
