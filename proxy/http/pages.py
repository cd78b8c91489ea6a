"""Branded HTML error pages from Jinja2 templates: the one module that owns jinja2.

Lookup order for a problem: the route's `template`, `<status>.html`,
`<class>xx.html`, `error.html`; a `templates_dir` overrides the built-in files
one by one. A template that fails at request time falls back to the built-in
page for the same status, so a broken override never becomes a 500.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jinja2

from ..core.problem import Problem, default_detail

log = logging.getLogger("errorproxy.pages")

# The built-in pages: top-level templates/ in the repository, the `proxy.templates` package once installed.
BUILTIN = resources.files("proxy.templates")
DEFAULT_BRAND = {"name": "This service", "logo_url": "", "support_url": "", "accent_color": "#0b5fff", "footer_text": ""}
SAMPLE_STATUSES = (400, 401, 403, 404, 409, 412, 413, 428, 429, 500, 502, 503, 504)


def names(status: int, template: str | None = None) -> list[str]:
    """Templates to try, in order.

    >>> names(409, "site_error.html")
    ['site_error.html', '409.html', '4xx.html', 'error.html']
    """
    return ([template] if template else []) + [f"{status}.html", f"{status // 100}xx.html", "error.html"]


def on_accent(color: str) -> str:
    """Black or white, whichever reads better on `color` (a #rgb or #rrggbb value)."""
    return "#000000" if contrast(color, "#000000") >= contrast(color, "#ffffff") else "#ffffff"


def _luminance(color: str) -> float:
    hex_digits = color.lstrip("#")
    if len(hex_digits) in (3, 4):
        hex_digits = "".join(c * 2 for c in hex_digits[:3])
    channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two colours.

    >>> round(contrast("#ffffff", "#000000"), 1)
    21.0
    """
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Retry-After comes from the upstream: hostile. Seconds are ASCII digits only
# (str.isdigit() also takes "²", which int() refuses, and "٣"), at most ten
# of them: 2**31, the most RFC 9111 asks a recipient to represent, has ten,
# and int() refuses more than 4,300. A date is at most a few dozen characters.
_SECONDS = re.compile(r"[0-9]{1,10}")
_MAX_DATE = 64


def retry_after_text(value: str | None, now: datetime | None = None) -> str | None:
    """Retry-After as words: `in 2 minutes`, `after 14:30 UTC`; None for a value that is neither.

    >>> retry_after_text("90")
    'in 2 minutes'
    >>> retry_after_text("²") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = int(value)
        if seconds < 60:
            return f"in {seconds} second{'s' if seconds != 1 else ''}"
        minutes = round(seconds / 60)
        if minutes < 120:
            return f"in {minutes} minute{'s' if minutes != 1 else ''}"
        hours = round(minutes / 60)
        return f"in about {hours} hours" if hours < 48 else f"in about {round(hours / 24)} days"
    if len(value) > _MAX_DATE:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        # Both in UTC before comparing days: the label says UTC, so must the time and the date.
        # (31 Dec 9999 23:00 -0100 is past the last date Python holds: OverflowError.)
        when = when.astimezone(timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"after {when:%H:%M} UTC" if when.date() == now.date() else f"after {when:%d %b %Y %H:%M} UTC"


def _builtin_loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader("proxy.templates", ".")


@dataclass
class TemplateProblem:
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class Pages:
    """Renders problems as HTML pages for one configuration (brand + templates_dir)."""

    def __init__(self, brand: Mapping[str, str] | None = None, templates_dir: str | None = None) -> None:
        self.brand = {**DEFAULT_BRAND, **(brand or {})}
        self.templates_dir = templates_dir
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(templates_dir)] if templates_dir else []
        self._env = _environment(jinja2.ChoiceLoader([*loaders, _builtin_loader()]))
        self._builtin = _environment(_builtin_loader())

    def context(self, problem: Problem, retry_after: str | None = None) -> dict[str, Any]:
        accent = self.brand["accent_color"]
        return {
            "lang": self.brand.get("lang", "en"),
            "status": problem.status,
            "title": problem.title,
            "detail": problem.detail,
            # The status's stock text, written for API clients: pages with their own words leave it out.
            "generic_detail": problem.detail == default_detail(problem.status),
            "type": problem.type,
            "instance": problem.instance or "",
            "request_id": problem.request_id or "",
            "extensions": dict(problem.extensions),
            "brand": self.brand,
            "accent": accent,
            "on_accent": on_accent(accent),
            "retry_after": retry_after_text(retry_after),
        }

    def render(self, problem: Problem, template: str | None = None, retry_after: str | None = None) -> bytes:
        context = self.context(problem, retry_after)
        candidates = names(problem.status, template)
        try:
            return self._env.select_template(candidates).render(context).encode()
        except Exception as exc:  # a broken override: log it, never answer with a traceback
            log.error("template for %s failed (%s: %s); using the built-in page request_id=%s",
                      problem.status, type(exc).__name__, exc, problem.request_id)
        return self._builtin.select_template(candidates[1:] if template else candidates).render(context).encode()

    def check(self, route_templates: tuple[str, ...] = ()) -> list[TemplateProblem]:
        """Every problem a request could meet: syntax, missing files, undefined variables."""
        found: list[TemplateProblem] = []
        for name in route_templates:
            try:
                self._env.get_template(name)
            except jinja2.TemplateNotFound:
                found.append(TemplateProblem(name, "not found in templates_dir or the built-in templates"))
            except jinja2.TemplateSyntaxError as exc:
                found.append(TemplateProblem(exc.filename or name, f"line {exc.lineno}: {exc.message}"))
            except UnicodeDecodeError as exc:
                found.append(TemplateProblem(name, f"not UTF-8 text (byte {exc.start})"))
            except OSError as exc:
                found.append(TemplateProblem(name, f"cannot read the file: {exc.strerror or exc}"))
        if self.templates_dir is not None:
            directory = Path(self.templates_dir)
            if not directory.is_dir():
                return [TemplateProblem(str(directory), "templates_dir is not a directory")]
            for path in sorted(directory.glob("*.html")):
                try:
                    self._env.get_template(path.name)
                except jinja2.TemplateSyntaxError as exc:
                    found.append(TemplateProblem(str(path), f"line {exc.lineno}: {exc.message}"))
                except UnicodeDecodeError as exc:
                    found.append(TemplateProblem(str(path), f"not UTF-8 text (byte {exc.start})"))
                except OSError as exc:
                    found.append(TemplateProblem(str(path), f"cannot read the file: {exc.strerror or exc}"))
                except jinja2.TemplateNotFound:
                    continue  # not a file (a directory named *.html): never looked up as a page
        if found:
            return found
        seen = set()
        for template in (None, *route_templates):
            for status, retry_after in itertools.product(SAMPLE_STATUSES, ("120", None)):
                # With and without Retry-After: `{% if retry_after %}` has two branches to check.
                sample = Problem(status=status, detail="Sample detail.", instance="/sample", request_id="0" * 32)
                name = names(status, template)[0]
                try:
                    selected = self._env.select_template(names(status, template))
                    name = selected.name or name  # the file that was used, say 4xx.html for 418
                    selected.render(self.context(sample, retry_after))
                except Exception as exc:  # noqa: BLE001 - {{ 1 // 0 }} fails as ZeroDivisionError, not a TemplateError
                    message = f"{type(exc).__name__}: {str(exc)[:300]}"
                    if message not in seen:
                        seen.add(message)
                        found.append(TemplateProblem(name, f"rendering status {status} fails: {message}"))
        return found


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a variable name is found by `check`, not by a visitor
        auto_reload=False,
    )
