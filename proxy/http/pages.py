"""Branded HTML error pages from Jinja2 templates: the one module that owns jinja2.

Lookup order for a problem: the route's `template`, `<status>.html`,
`<class>xx.html`, `error.html`; a `templates_dir` overrides the built-in files
one by one. A template that fails at request time falls back to the built-in
page for the same status, so a broken override never becomes a 500.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jinja2
from markupsafe import Markup, escape

from ..core.language import supported
from ..core.problem import Problem, default_detail
from ..core.texts import N_
from .i18n import Catalog, Texts, retry_after_text  # noqa: F401  (retry_after_text: part of this module's face)

log = logging.getLogger("errorproxy.pages")

# The built-in pages: top-level templates/ in the repository, the `proxy.templates` package once installed.
BUILTIN = resources.files("proxy.templates")
DEFAULT_BRAND = {"name": "This service", "logo_url": "", "support_url": "", "accent_color": "#0b5fff", "footer_text": ""}
_NO_SPACE = frozenset({"ja", "zh-Hans"})
# The brand's name when the config gives none: words on the page, so they are translated.
_NO_NAME = N_("page.brand", "This service")
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


def _builtin_loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader("proxy.templates", ".")


@dataclass
class TemplateProblem:
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class Pages:
    """Renders problems as HTML pages for one configuration (brand, templates_dir, messages).

    Each language has its own Jinja2 environments, made when first asked for,
    with that language's catalog installed (`jinja2.ext.i18n`): templates say
    `{% trans "409.headline" %}Someone else changed this{% endtrans %}`.
    """

    def __init__(self, brand: Mapping[str, str] | None = None, templates_dir: str | None = None,
                 messages: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.brand = {**DEFAULT_BRAND, **(brand or {})}
        self._named = bool((brand or {}).get("name"))
        self.templates_dir = templates_dir
        self.texts = Texts(supported(self.brand.get("lang", "")) or "en", messages)
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(templates_dir)] if templates_dir else []
        self._loader = jinja2.ChoiceLoader([*loaders, _builtin_loader()])
        self._builtin_loader = _builtin_loader()
        self._environments: dict[str, tuple[jinja2.Environment, jinja2.Environment]] = {}

    def _envs(self, catalog: Catalog) -> tuple[jinja2.Environment, jinja2.Environment]:
        """(templates_dir over the built-in pages, the built-in pages alone) in `catalog`'s language."""
        envs = self._environments.get(catalog.language)
        if envs is None:
            envs = (_environment(self._loader, catalog), _environment(self._builtin_loader, catalog))
            self._environments[catalog.language] = envs
        return envs

    def context(self, problem: Problem, retry_after: str | None = None, catalog: Catalog | None = None) -> dict[str, Any]:
        catalog = catalog or self.texts.catalogs[self.texts.default]
        shown = catalog.localize(problem)
        brand = self.brand if self._named else {**self.brand, "name": catalog.pgettext(_NO_NAME.id, _NO_NAME)}
        accent = self.brand["accent_color"]
        return {
            "lang": catalog.language,  # the language the page is written in, as rendered
            "status": problem.status,
            "title": shown.title,
            "detail": shown.detail,
            # The status's stock text, written for API clients: pages with their own words leave it out.
            "generic_detail": problem.detail == default_detail(problem.status),
            "type": problem.type,
            "instance": problem.instance or "",
            "request_id": problem.request_id or "",
            "extensions": dict(problem.extensions),
            "brand": brand,
            "accent": accent,
            "on_accent": on_accent(accent),
            "retry_after": retry_after_text(retry_after, catalog=catalog),
            # Between two sentences: a space, except in scripts that write none (Japanese, Chinese).
            "sentence_gap": "" if catalog.language in _NO_SPACE else " ",
        }

    def render(self, problem: Problem, template: str | None = None, retry_after: str | None = None,
               catalog: Catalog | None = None) -> bytes:
        """The page for `problem` in `catalog`'s language (the default language without one)."""
        catalog = catalog or self.texts.catalogs[self.texts.default]
        context = self.context(problem, retry_after, catalog)
        candidates = names(problem.status, template)
        env, builtin = self._envs(catalog)
        try:
            return env.select_template(candidates).render(context).encode()
        except Exception as exc:  # a broken override: log it, never answer with a traceback
            log.error("template for %s failed (%s: %s); using the built-in page request_id=%s",
                      problem.status, type(exc).__name__, exc, problem.request_id)
        return builtin.select_template(candidates[1:] if template else candidates).render(context).encode()

    def check(self, route_templates: tuple[str, ...] = ()) -> list[TemplateProblem]:
        """Every problem a request could meet: syntax, missing files, undefined variables."""
        found: list[TemplateProblem] = []
        env = self._envs(self.texts.catalogs[self.texts.default])[0]
        for name in route_templates:
            try:
                env.get_template(name)
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
                    env.get_template(path.name)
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
        # In the default language: the others differ only in words, each checked where it is loaded
        # (the catalogs by tests/unit/test_catalogs.py, the config's overrides by the loader).
        catalog = self.texts.catalogs[self.texts.default]
        for template in (None, *route_templates):
            for status, retry_after in itertools.product(SAMPLE_STATUSES, ("120", None)):
                # With and without Retry-After: `{% if retry_after %}` has two branches to check.
                sample = Problem(status=status, detail="Sample detail.", instance="/sample", request_id="0" * 32)
                name = names(status, template)[0]
                try:
                    selected = env.select_template(names(status, template))
                    name = selected.name or name  # the file that was used, say 4xx.html for 418
                    selected.render(self.context(sample, retry_after, catalog))
                except Exception as exc:  # noqa: BLE001 - {{ 1 // 0 }} fails as ZeroDivisionError, not a TemplateError
                    message = f"{type(exc).__name__}: {str(exc)[:300]}"
                    if message not in seen:
                        seen.add(message)
                        found.append(TemplateProblem(name, f"rendering status {status} fails: {message}"))
        return found


def _environment(loader: jinja2.BaseLoader, catalog: Catalog) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a variable name is found by `check`, not by a visitor
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    # Newstyle: `{% trans %}` and `pgettext(...)` format with %(name)s and escape the values they are given.
    env.install_gettext_translations(_HTMLTexts(catalog), newstyle=True)  # type: ignore[attr-defined]
    return env


class _HTMLTexts:
    """A catalog as Jinja's i18n extension calls it.

    The extension marks a translated text safe (Markup) before filling it in,
    as if it were template source. Texts here are plain words (from a catalog,
    or an operator's override), never markup, so each is escaped first: a `<`
    in an override shows as `<`, and a quote cannot end an attribute.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def gettext(self, message: str) -> Markup:
        return escape(self._catalog.gettext(message))

    def ngettext(self, singular: str, plural: str, count: int) -> Markup:
        return escape(self._catalog.ngettext(singular, plural, count))

    def pgettext(self, context: str, message: str) -> Markup:
        return escape(self._catalog.pgettext(context, message))

    def npgettext(self, context: str, singular: str, plural: str, count: int) -> Markup:
        return escape(self._catalog.npgettext(context, singular, plural, count))
