"""pages: template lookup and overrides, brand variables, template checks, colours, Retry-After."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from proxy.http.pages import BUILTIN, Pages, contrast, names, on_accent, retry_after_text
from proxy.core.problem import Problem, default_detail

BLACK, WHITE = "#000000", "#ffffff"


def page(pages: Pages, status: int, template: str | None = None, **fields) -> str:
    problem = Problem(status=status, detail=fields.pop("detail", "Sample detail."), instance="/x", request_id="rid-7", **fields)
    return pages.render(problem, template).decode()


def overrides(directory: Path, files: dict[str, str]) -> Pages:
    for name, text in files.items():
        (directory / name).write_text(text)
    return Pages(templates_dir=str(directory))


def marker(name: str) -> str:
    """An override page that says which file it is."""
    return '{% extends "base.html" %}{% block headline %}OVERRIDE ' + name + "{% endblock %}"


# --- lookup order ----------------------------------------------------------------------------


def test_names_are_tried_route_status_class_error():
    assert names(409, "site_error.html") == ["site_error.html", "409.html", "4xx.html", "error.html"]
    assert names(503) == ["503.html", "5xx.html", "error.html"]


@pytest.mark.parametrize(
    ("override", "status", "template", "used"),
    [
        pytest.param("site_error.html", 409, "site_error.html", True, id="route-template-first"),
        pytest.param("site_error.html", 409, None, False, id="route-template-only-for-its-route"),
        pytest.param("409.html", 409, None, True, id="status-file"),
        pytest.param("409.html", 412, None, False, id="status-file-only-for-its-status"),
        pytest.param("4xx.html", 418, None, True, id="class-file-for-a-status-without-a-page"),
        # A built-in page for the exact status beats an override of its class.
        pytest.param("4xx.html", 409, None, False, id="builtin-status-beats-class-override"),
        pytest.param("5xx.html", 599, None, True, id="class-file-5xx"),
        pytest.param("error.html", 418, None, False, id="error-is-last"),
        pytest.param("error.html", 302, None, True, id="error-when-nothing-else"),
    ],
)
def test_lookup_order_with_one_overridden_file(tmp_path, override, status, template, used):
    pages = overrides(tmp_path, {override: marker(override)})
    assert (f"OVERRIDE {override}" in page(pages, status, template)) is used


def test_builtin_pages_when_nothing_is_overridden(tmp_path):
    pages = Pages(templates_dir=str(tmp_path))
    assert "Someone else changed this" in page(pages, 409)
    assert "Check the address and what you sent" in page(pages, 418)  # 4xx.html
    assert "Something went wrong on our side" in page(pages, 599)  # 5xx.html


def test_an_overridden_base_changes_every_page(tmp_path):
    pages = overrides(tmp_path, {"base.html": "<p>BASE {{ status }} {% block headline %}{% endblock %}</p>"})
    assert page(pages, 409) == "<p>BASE 409 Someone else changed this</p>"
    assert page(pages, 599).startswith("<p>BASE 599")


# --- brand and problem variables ---------------------------------------------------------------


def test_brand_variables_appear():
    brand = {"name": "Acme", "logo_url": "/static/logo.svg", "support_url": "https://status.example.com",
             "accent_color": "#ffcc00", "footer_text": "Acme Corp, Support line 0800 123", "lang": "en-GB"}
    html = page(Pages(brand), 409)
    assert '<html lang="en">' in html  # the language the page is written in (see test_i18n.py)
    assert "<title>409 Conflict · Acme</title>" in html
    assert '<img src="/static/logo.svg" alt="Acme">' in html
    assert '<a href="https://status.example.com">contact support</a>' in html
    assert "--accent: #ffcc00; --on-accent: #000000;" in html  # yellow takes black text
    assert "<footer>Acme Corp, Support line 0800 123</footer>" in html
    assert "<code>rid-7</code>" in html


def test_default_brand_has_a_name_and_no_logo_link_or_footer():
    html = page(Pages(), 502)
    assert "<strong>This service</strong>" in html and "<img" not in html
    assert "contact support and quote this ID" in html and "<a " not in html
    assert "<footer" not in html  # it would only repeat the name


@pytest.mark.parametrize(
    ("status", "own_words"),
    [(401, "You need to be signed in"), (404, "Check the address for typing mistakes"), (409, "Your change was not saved"),
     (429, "Wait a minute, then try again"), (500, "Something went wrong on our side"), (503, "down for maintenance")],
)
def test_pages_with_their_own_words_leave_out_the_stock_api_detail(status, own_words):
    pages = Pages()
    stock = page(pages, status, detail=default_detail(status))
    assert own_words in stock
    assert default_detail(status) not in stock and 'class="detail"' not in stock
    assert '<p class="detail">Row 7 is locked by Ann.</p>' in page(pages, status, detail="Row 7 is locked by Ann.")


def test_generic_pages_keep_the_stock_detail():
    html = page(Pages(), 422, detail=default_detail(422))
    assert f'<p class="detail">{default_detail(422)}</p>' in html


def test_problem_values_are_escaped():
    html = page(Pages({"name": "A&B <Co>"}), 409, detail='"><img src=x onerror=alert(1)><script>alert(1)</script>')
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B &lt;Co&gt;" in html


@pytest.mark.parametrize("path", sorted((p for p in BUILTIN.iterdir() if p.name.endswith(".html")), key=lambda p: p.name), ids=lambda path: path.name)
def test_pages_load_nothing_and_run_nothing(path):
    text = path.read_text()
    assert "<script" not in text and "@import" not in text and not re.search(r"url\(|\son[a-z]+=", text)
    # The one link stops the browser's own favicon request, which would reach the upstream.
    assert re.findall(r"<link[^>]*>", text) == (['<link rel="icon" href="data:,">'] if path.name == "base.html" else [])


def test_the_page_forbids_scripts_and_foreign_loads():
    html = page(Pages(), 409)
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert policy and "default-src 'none'" in policy.group(1) and "script-src" not in policy.group(1)


def test_retry_after_reaches_the_page():
    pages = Pages()
    problem = Problem(status=429, detail="Slow down.", request_id="r")
    assert "You can try again in 2 minutes." in pages.render(problem, retry_after="90").decode()
    assert "Wait a minute, then try again." in pages.render(problem).decode()


# --- check: what a request would meet, found at load time ----------------------------------------


def test_builtin_templates_check_clean(tmp_path):
    assert Pages().check() == []
    assert Pages(templates_dir=str(tmp_path)).check() == []


def test_check_reports_a_syntax_error_with_its_line(tmp_path):
    pages = overrides(tmp_path, {"409.html": '{% extends "base.html" %}\n{% block next %}\n{% if %}\n{% endblock %}\n'})
    [problem] = pages.check()
    assert problem.name == str(tmp_path / "409.html")
    assert problem.message.startswith("line 3: ")


def test_check_reports_a_missing_route_template():
    [problem] = Pages().check(("site_error.html",))
    assert str(problem) == "site_error.html: not found in templates_dir or the built-in templates"


@pytest.mark.parametrize(
    ("files", "name", "undefined"),
    [
        pytest.param({"4xx.html": "<p>{{ reqest_id }}</p>"}, "4xx.html", "reqest_id", id="top-level"),
        pytest.param({"409.html": "<p>{{ brand.nmae }}</p>"}, "409.html", "nmae", id="brand-attribute"),
        # Only reached without Retry-After: check renders both branches.
        pytest.param({"429.html": "{% if retry_after %}soon{% else %}{{ wait_text }}{% endif %}"}, "429.html",
                     "wait_text", id="else-branch"),
        pytest.param({"5xx.html": "{% if extensions.current_etag %}x{% endif %}"}, "5xx.html", "current_etag",
                     id="optional-extension"),
    ],
)
def test_check_reports_an_undefined_variable(tmp_path, files, name, undefined):
    problems = overrides(tmp_path, files).check()
    assert problems, "the undefined variable went unnoticed"
    assert problems[0].name == name
    assert "UndefinedError" in problems[0].message and undefined in problems[0].message


def test_check_reports_a_missing_templates_dir(tmp_path):
    [problem] = Pages(templates_dir=str(tmp_path / "nope")).check()
    assert problem.message == "templates_dir is not a directory"


# --- a broken override never breaks the response ---------------------------------------------------


@pytest.mark.parametrize(
    ("files", "template"),
    [
        pytest.param({"409.html": "<p>{{ nope }}</p>"}, None, id="undefined-variable"),
        pytest.param({"409.html": "{% if %}"}, None, id="syntax-error"),
        pytest.param({"base.html": "{{ brand.missing }}"}, None, id="broken-base"),
        pytest.param({"site_error.html": "{{ 1 / 0 }}"}, "site_error.html", id="route-template-raises"),
    ],
)
def test_a_broken_override_falls_back_to_the_builtin_page(tmp_path, caplog, files, template):
    pages = overrides(tmp_path, files)
    with caplog.at_level(logging.ERROR, logger="errorproxy.pages"):
        html = page(pages, 409, template)
    assert "Someone else changed this" in html and "<code>rid-7</code>" in html
    assert "using the built-in page request_id=rid-7" in caplog.text


# --- colours -------------------------------------------------------------------------------------


def _palettes() -> dict[str, dict[str, str]]:
    """The custom properties of base.html's light `:root` and its dark-scheme `:root`."""
    css = (BUILTIN / "base.html").read_text()
    light = re.search(r"^:root\s*\{(.*?)\}", css, re.S | re.M)
    dark = re.search(r"@media\s*\(prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{(.*?)\}", css, re.S)
    assert light and dark, "base.html no longer has a light :root and a dark media query"

    def colours(block: str) -> dict[str, str]:
        return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})\b", block))

    light_colours = colours(light.group(1))
    return {"light": light_colours, "dark": {**light_colours, **colours(dark.group(1))}}


PALETTES = _palettes()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("text", "background"), [("fg", "bg"), ("fg", "card"), ("muted", "bg"), ("muted", "card")])
def test_text_contrast_meets_wcag_aa(scheme, text, background):
    palette = PALETTES[scheme]
    assert {"fg", "bg", "muted", "card"} <= palette.keys()
    ratio = contrast(palette[text], palette[background])
    assert ratio >= 4.5, f"{scheme}: --{text} {palette[text]} on --{background} {palette[background]} is {ratio:.2f}:1"


def test_dark_scheme_changes_every_text_colour():
    assert all(PALETTES["dark"][key] != PALETTES["light"][key] for key in ("fg", "bg", "muted", "card"))


def test_contrast_is_the_wcag_ratio():
    assert contrast(WHITE, BLACK) == pytest.approx(21.0)
    assert contrast(BLACK, WHITE) == contrast(WHITE, BLACK)
    assert contrast("#777777", WHITE) == pytest.approx(4.48, abs=0.01)
    assert contrast("#fff", "#ffffff") == 1.0


@pytest.mark.parametrize(
    "accent",
    ["#0b5fff", "#ffcc00", "#e11d48", "#16a34a", "#7c3aed", "#777777", "#767676", "#000", "#fff", "#0f0", "#ff6a00"],
)
def test_on_accent_picks_the_readable_one(accent):
    chosen = on_accent(accent)
    assert chosen in (BLACK, WHITE)
    best = max(contrast(accent, BLACK), contrast(accent, WHITE))
    assert contrast(accent, chosen) >= 4.5 or contrast(accent, chosen) == best
    assert contrast(accent, chosen) == best


@pytest.mark.parametrize(("accent", "expected"), [("#0b5fff", WHITE), ("#ffcc00", BLACK), ("#000", WHITE), ("#fff", BLACK)])
def test_on_accent_examples(accent, expected):
    assert on_accent(accent) == expected


# --- Retry-After in words ----------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0", "in 0 seconds", id="zero"),
        pytest.param("1", "in 1 second", id="one-second"),
        pytest.param("45", "in 45 seconds", id="seconds"),
        pytest.param(" 60 ", "in 1 minute", id="one-minute-spaces"),
        pytest.param("90", "in 2 minutes", id="rounded-minutes"),
        pytest.param("7199", "in about 2 hours", id="rounds-up-to-hours"),
        pytest.param("36000", "in about 10 hours", id="hours"),
        pytest.param("604800", "in about 7 days", id="days"),
        pytest.param("Sun, 01 Mar 2026 14:30:00 GMT", "after 14:30 UTC", id="date-today"),
        pytest.param("Mon, 02 Mar 2026 09:05:00 GMT", "after 2 Mar 2026 09:05 UTC", id="date-tomorrow"),
        pytest.param("Sunday, 01-Mar-26 14:30:00 GMT", "after 14:30 UTC", id="rfc850-date"),
        pytest.param("Sun Mar  1 14:30:00 2026", "after 14:30 UTC", id="asctime-date"),
        # Not HTTP-dates, but parseable: shown in UTC, as the label says.
        pytest.param("Mon, 02 Mar 2026 01:30:00 +0200", "after 23:30 UTC", id="offset-same-utc-day"),
        pytest.param("Sun, 01 Mar 2026 23:30:00 -0300", "after 2 Mar 2026 02:30 UTC", id="offset-next-utc-day"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        # From the upstream, so hostile: each of these once raised, and the page became a 500.
        pytest.param("²", None, id="superscript-digit"),
        pytest.param("٣", None, id="arabic-indic-digit"),
        pytest.param("1" * 4301, None, id="past-int-digit-limit"),
        pytest.param("9" * 400, None, id="past-float-range"),
        pytest.param("9" * 11, None, id="eleven-digits"),
        pytest.param("2147483648", "in about 24855 days", id="two-to-the-31"),
        pytest.param("Fri, 31 Dec 9999 23:59:59 -0100", None, id="date-past-datetime-max-in-utc"),
        pytest.param("Sun, 01 Mar 2026 14:30:00 GMT" + " " * 100 + "x", None, id="date-too-long"),
    ],
)
def test_retry_after_text(value, expected):
    assert retry_after_text(value, now=NOW) == expected


@pytest.mark.parametrize("value", ["²", "1" * 4301, "Fri, 31 Dec 9999 23:59:59 -0100"])
def test_hostile_retry_after_renders_a_page_without_it(value):
    page = Pages().render(Problem(status=429, detail="Slow down."), retry_after=value).decode()
    assert "Wait a minute, then try again." in page
