"""Errors in the client's language: pages, problem texts, overrides, and the headers that say so."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from proxy.core import errors
from proxy.core.language import LANGUAGES
from proxy.core.negotiation import HTML, JSON, PROBLEM, TEXT
from proxy.core.problem import Problem, default_detail
from proxy.core.settings import ErrorPolicy
from proxy.http.i18n import Catalog, Texts, retry_after_text
from proxy.http.pages import Pages
from proxy.http.render import Shape, render

# Per language: the 409 page's headline, the 409 title, the 409 default detail's start, Retry-After 120 in words.
EXPECTED = {
    "en": ("Someone else changed this", "Conflict", "The resource was changed by another request.", "in 2 minutes"),
    "de": ("Jemand anderes hat das geändert", "Konflikt", "Die Ressource wurde durch eine andere Anfrage geändert.",
           "in 2 Minuten"),
    "fr": ("Quelqu’un d’autre a modifié ce contenu", "Conflit", "La ressource a été modifiée par une autre requête.",
           "dans 2 minutes"),
    "es": ("Otra persona cambió esto", "Conflicto", "Otra solicitud modificó el recurso.", "en 2 minutos"),
    "pt": ("Outra pessoa alterou isto", "Conflito", "O recurso foi alterado por outra solicitação.", "em 2 minutos"),
    "ja": ("他の人がこの内容を変更しました", "競合", "リソースは別のリクエストによって変更されました。", "2分後"),
    "zh-Hans": ("其他人修改了此内容", "冲突", "该资源已被另一个请求修改。", "2分钟后"),
}
UPSTREAM_DETAIL = "Version conflict: document 42 was modified"


def page_text(html: str, tag: str) -> str:
    match = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", html, re.DOTALL)
    assert match, tag
    return match.group(1)


def html(response) -> str:
    return response.body.decode()


# --- each language, each format -----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_page_in_each_language(language):
    headline, title, _, _ = EXPECTED[language]
    problem = Problem(status=409, detail=UPSTREAM_DETAIL, request_id="rid-1")
    response = render(problem, Shape(), origin="upstream", choice=HTML, accept_language=language)
    page = html(response)
    assert f'<html lang="{language}">' in page
    assert page_text(page, "h1") == headline
    assert page_text(page, "title").startswith(f"409 {title} · ")
    assert UPSTREAM_DETAIL in page  # the upstream's words stay as written
    assert response.headers["Content-Language"] == language
    if language != "en":
        for english in ("Someone else changed this", "Your change was not saved", "What you can do",
                        "Request ID:", "This service", "contact support"):
            assert english not in page, (language, english)


@pytest.mark.parametrize("language", LANGUAGES)
def test_default_texts_in_json_and_text(language):
    _, title, detail, _ = EXPECTED[language]
    problem = Problem(status=409, detail=default_detail(409), request_id="rid-1")
    body = json.loads(render(problem, Shape(), choice=PROBLEM, accept_language=language).body)
    assert body["title"] == title and body["detail"].startswith(detail)
    text = render(problem, Shape(), choice=TEXT, accept_language=language).body.decode()
    assert text.startswith(f"409 {title}\n\n{detail}")
    envelope = json.loads(render(problem, Shape(ErrorPolicy(json_style="envelope")), choice=JSON,
                                 accept_language=language).body)
    assert envelope["error"]["message"] == title and envelope["error"]["details"].startswith(detail)


def test_text_format_labels_the_request_id():
    problem = Problem(status=502, detail=default_detail(502), request_id="rid-9")
    text = render(problem, Shape(), choice=TEXT, accept_language="de").body.decode()
    assert text.endswith("\n\nAnfrage-ID: rid-9\n")


@pytest.mark.parametrize("language", LANGUAGES)
def test_retry_after_in_each_language(language):
    words = EXPECTED[language][3]
    assert retry_after_text("120", catalog=Catalog(language)) == words
    page = html(render(Problem(status=503, request_id="r"), Shape(), origin="upstream", choice=HTML,
                       accept_language=language, keep=[("Retry-After", "120")]))
    assert words in page


@pytest.mark.parametrize(
    ("language", "value", "expected"),
    [
        ("de", "1", "in 1 Sekunde"),
        ("de", "45", "in 45 Sekunden"),
        ("fr", "1", "dans 1 seconde"),
        ("fr", "0", "dans 0 seconde"),  # French counts 0 as one
        ("fr", "7200", "dans environ 2 heures"),
        ("es", "604800", "en aproximadamente 7 días"),
        ("ja", "36000", "約10時間後"),
        ("de", "Sun, 01 Mar 2026 14:30:00 GMT", "ab 14:30 UTC"),
        ("de", "Mon, 02 Mar 2026 09:05:00 GMT", "ab dem 2. März 2026, 09:05 UTC"),
        ("fr", "Mon, 02 Mar 2026 09:05:00 GMT", "à partir du 2 mars 2026 à 09:05 UTC"),
        ("ja", "Mon, 02 Mar 2026 09:05:00 GMT", "2026年3月2日 09:05（UTC）以降"),
        ("zh-Hans", "Mon, 02 Mar 2026 09:05:00 GMT", "2026年3月2日 09:05（UTC）之后"),
        ("pt", "²", None),  # hostile input stays hostile in every language
    ],
)
def test_retry_after_words(language, value, expected):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert retry_after_text(value, now=now, catalog=Catalog(language)) == expected


# --- what is translated, and what is not --------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "title", "detail"),
    [
        pytest.param(Problem(status=404), "Nicht gefunden", None, id="standard-title"),
        pytest.param(Problem(status=413, title="Request Entity Too Large"), "Inhalt zu groß", None,
                     id="older-python-phrase"),
        pytest.param(Problem(status=418), "Ich bin eine Teekanne", None, id="every-registered-status"),
        pytest.param(Problem(status=499), "Client-Fehler", None, id="unregistered-4xx"),
        pytest.param(Problem(status=409, title="Edit conflict"), "Edit conflict", None, id="route-title-kept"),
        pytest.param(Problem(status=409, detail=default_detail(409)), "Konflikt",
                     "Die Ressource wurde durch eine andere Anfrage geändert. Rufen Sie sie erneut ab, wenden Sie "
                     "Ihre Änderung erneut an und senden Sie die Anfrage noch einmal, mit If-Match auf ihren "
                     "aktuellen ETag gesetzt.", id="default-detail"),
        # The same words from an upstream are the upstream's: a plain str, never translated.
        pytest.param(Problem(status=409, detail=str(default_detail(409))), "Konflikt", str(default_detail(409)),
                     id="upstream-detail-equal-to-a-default-kept"),
        pytest.param(Problem(status=409, detail=UPSTREAM_DETAIL), "Konflikt", UPSTREAM_DETAIL, id="upstream-detail"),
        pytest.param(Problem(status=599, detail=default_detail(599)), "Serverfehler",
                     "Bei uns ist etwas schiefgelaufen.", id="unregistered-5xx-default"),
    ],
)
def test_localize_translates_only_the_proxys_own_words(problem, title, detail):
    shown = Catalog("de").localize(problem)
    assert shown.title == title
    if detail is not None:
        assert shown.detail.startswith(detail)
    assert problem.title != "Konflikt"  # the problem itself is not changed


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.ConnectionRefused(), "Der Dienst hinter dieser Adresse hat die Verbindung abgelehnt."),
        (errors.ResponseTimeout(), "Der Dienst hinter dieser Adresse hat nicht rechtzeitig geantwortet."),
        (errors.NoRoute(), "Für diesen Host, diesen Pfad und diese Methode ist keine Route konfiguriert."),
        (errors.BadRequest("Header line too long."), "Header line too long."),  # written for the occasion
    ],
)
def test_the_proxys_own_errors_are_translated(error, expected):
    problem = Problem.from_error(error, instance="/x", request_id="r")
    assert Catalog("de").localize(problem).detail == expected


def test_page_shows_a_translated_proxy_error_detail():
    """A 502 page says why in the page's language (the stock detail differs from the status's default)."""
    problem = Problem.from_error(errors.ConnectionRefused(), instance="/x", request_id="r")
    page = html(render(problem, Shape(), choice=HTML, accept_language="ja"))
    assert "このアドレスの背後にあるサービスが接続を拒否しました。" in page
    assert "refused the connection" not in page


def test_default_brand_name_is_translated_a_configured_one_is_not():
    problem = Problem(status=404, request_id="r")
    assert "<strong>Dieser Dienst</strong>" in Pages().render(problem, catalog=Catalog("de")).decode()
    assert "<strong>Acme</strong>" in Pages({"name": "Acme"}).render(problem, catalog=Catalog("de")).decode()


def test_brand_lang_is_the_default_and_html_lang_is_the_language_rendered():
    pages = Pages({"lang": "de-CH"})
    page = pages.render(Problem(status=409, request_id="r")).decode()
    assert '<html lang="de">' in page and "Jemand anderes hat das geändert" in page
    shape = Shape(pages=pages)
    response = render(Problem(status=409), shape, origin="upstream", choice=HTML, accept_language="")
    assert response.headers["Content-Language"] == "de"
    response = render(Problem(status=409), shape, origin="upstream", choice=HTML, accept_language="fr, de;q=0.5")
    assert response.headers["Content-Language"] == "fr" and '<html lang="fr">' in html(response)
    assert Pages({"lang": "it"}).texts.default == "en"  # unsupported (the loader refuses it): English


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "vary", "content_language"),
    [
        pytest.param(None, [], "en", id="not-negotiated"),
        pytest.param("", ["Accept-Language"], "en", id="negotiated-header-absent"),
        pytest.param("pt-BR", ["Accept-Language"], "pt", id="negotiated"),
        pytest.param("it", ["Accept-Language"], "en", id="negotiated-unsupported"),
    ],
)
@pytest.mark.parametrize("choice", [PROBLEM, HTML, TEXT], ids=lambda c: c.kind)
def test_vary_and_content_language(accept_language, vary, content_language, choice):
    response = render(Problem(status=502, request_id="r"), Shape(), choice=choice, accept_language=accept_language)
    assert response.headers.getall("Vary", []) == vary
    assert response.headers.getall("Content-Language") == [content_language]


def test_vary_accept_and_accept_language_together():
    response = render(Problem(status=409), Shape(), origin="upstream", accept="text/html", accept_language="de")
    assert response.headers.getall("Vary") == ["Accept", "Accept-Language"]


def test_plain_problem_json_is_translated_too():
    """A route that leaves the proxy's errors alone still answers in the client's language."""
    shape = Shape(ErrorPolicy(origins=frozenset({"upstream"})))
    problem = Problem.from_error(errors.NoRoute(), instance="/x", request_id="r")
    response = render(problem, shape, origin="proxy", accept="text/html", accept_language="es")
    body = json.loads(response.body)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert body["title"] == "No encontrado" and response.headers["Content-Language"] == "es"


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_replace_single_texts_of_one_language():
    pages = Pages(messages={"de": {"409.headline": "Bearbeitungskonflikt", "409.title": "Konflikt beim Speichern",
                                   "409.detail": "Laden Sie neu."},
                            "en": {"page.brand": "Acme Docs"}})
    shape = Shape(pages=pages)
    problem = Problem(status=409, detail=default_detail(409), request_id="r")
    german = html(render(problem, shape, origin="upstream", choice=HTML, accept_language="de"))
    assert page_text(german, "h1") == "Bearbeitungskonflikt"
    assert page_text(german, "title") == "409 Konflikt beim Speichern · Dieser Dienst"
    body = json.loads(render(problem, shape, origin="upstream", choice=PROBLEM, accept_language="de").body)
    assert body["title"] == "Konflikt beim Speichern" and body["detail"] == "Laden Sie neu."
    english = html(render(problem, shape, origin="upstream", choice=HTML, accept_language="en"))
    assert "<strong>Acme Docs</strong>" in english and page_text(english, "h1") == "Someone else changed this"
    french = html(render(problem, shape, origin="upstream", choice=HTML, accept_language="fr"))
    assert page_text(french, "h1") == "Quelqu’un d’autre a modifié ce contenu"  # other languages untouched


def test_an_override_is_text_never_markup():
    pages = Pages(messages={"en": {"409.headline": '<img src=x onerror=alert(1)> & "quotes"',
                                   "page.next": 'Next" onmouseover="alert(1)'}})
    page = pages.render(Problem(status=409, request_id="r")).decode()
    assert page_text(page, "h1") == "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;"
    assert 'aria-label="Next&#34; onmouseover=&#34;alert(1)"' in page
    assert "<img" not in page


def test_override_placeholders_are_filled():
    pages = Pages(messages={"de": {"429.retry_at": "Nochmal %(when)s, bitte."}})
    page = pages.render(Problem(status=429, request_id="r"), retry_after="120", catalog=pages.texts.catalogs["de"])
    assert "Nochmal in 2 Minuten, bitte." in page.decode()


def test_texts_refuses_an_unknown_default():
    with pytest.raises(ValueError):
        Texts("it")


# --- every page, every language -----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_sample_page_renders_in_every_language(language):
    pages = Pages({"support_url": "https://status.example.com"})
    catalog = pages.texts.catalogs[language]
    for status in (400, 401, 403, 404, 409, 412, 413, 428, 429, 500, 502, 503, 504, 418, 599):
        for retry_after in (None, "120", "Mon, 02 Mar 2026 09:05:00 GMT"):
            page = pages.render(Problem(status=status, detail=default_detail(status), request_id="r"),
                                retry_after=retry_after, catalog=catalog).decode()
            assert f'<html lang="{language}">' in page
            assert "%(" not in page and "%%" not in page  # every placeholder filled


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ja", "サービスはメンテナンス中か、混み合っています。2分後に再試行してください。"),
        ("zh-Hans", "服务正在维护或负载过高。请在2分钟后重试。"),
        ("de", "Der Dienst wird gerade gewartet oder ist überlastet. Versuchen Sie es in 2 Minuten erneut."),
    ],
)
def test_sentences_are_joined_as_the_language_writes_them(language, expected):
    """Japanese and Chinese put no space between sentences; the others one."""
    page = Pages().render(Problem(status=503, request_id="r"), retry_after="120", catalog=Catalog(language))
    assert expected in page.decode()
