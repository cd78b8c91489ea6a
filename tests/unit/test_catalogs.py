"""The translation catalogs: every text translated in every language, each .mo its .po compiled."""

from __future__ import annotations

import io
from http import HTTPStatus

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from proxy.config.messages import message_sources, mo_originals, placeholders
from proxy.core import errors, guard_errors
from proxy.core.language import LANGUAGES
from proxy.core.texts import PROXY_DETAILS, TITLES, own, text_id
from proxy.http.i18n import directory
from proxy.tools import catalogs


def _messages(catalog) -> dict:
    return catalogs.messages(catalog)


@pytest.fixture(scope="module")
def sources() -> dict:
    """Every text in the sources, by (id, English), as Babel's extractors find them."""
    return _messages(catalogs.extract())


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_holds_every_text_of_the_sources_translated(language, sources):
    path = catalogs.po_path(language)
    with path.open("rb") as file:
        catalog = read_po(file, locale=directory(language))
    have = _messages(catalog)
    assert sorted(sources.keys() - have.keys()) == [], "texts missing: run python -m proxy.tools.catalogs update"
    # Texts the sources no longer have are allowed (unused until `update` drops them): a catalog
    # may be translated ahead of the code that uses a new text.
    untranslated = [message.context for message in catalog if message.id and (
        message.fuzzy or not all(message.string if isinstance(message.string, tuple) else [message.string]))]
    assert untranslated == []
    # Babel's checks: the placeholders of each translation are its English's (python-format).
    problems = [(message.context, str(error)) for message in catalog if message.id for error in message.check(catalog)]
    assert problems == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_shipped_mo_is_the_po_compiled(language):
    """Compiled again with Babel, each .po gives the committed .mo's texts (headers aside: they name Babel's version)."""
    path = catalogs.po_path(language)
    with path.open("rb") as file:
        catalog = read_po(file, locale=directory(language))
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    compiled = read_mo(io.BytesIO(out.getvalue()))
    with path.with_suffix(".mo").open("rb") as file:
        shipped = read_mo(file)
    assert _messages(shipped) == _messages(compiled), "run python -m proxy.tools.catalogs compile"
    assert shipped.plural_forms == compiled.plural_forms == catalog.plural_forms


def test_catalog_tool_finds_nothing_wrong():
    assert catalogs.check() == []


def test_english_catalog_is_the_sources_words(sources):
    """The English catalog lists every id the config's `messages` may name, with its English."""
    english = message_sources()
    assert set(english) >= {context for context, _ in sources}
    assert english["409.detail"].startswith("The resource was changed by another request.")
    assert english["retry.minutes"] == "in %(num)s minute in %(num)s minutes"
    assert placeholders(english["429.retry_at"]) == {"when"}


def test_mo_reader_reads_both_byte_orders():
    catalog = catalogs._new("de")
    catalog.add("Conflict", "Konflikt", context="409.title")
    out = io.BytesIO()
    write_mo(out, catalog)
    little = out.getvalue()
    assert "409.title\x04Conflict" in mo_originals(little)
    # The same file written big-endian: every 32-bit word of the header and tables swapped.
    count = int.from_bytes(little[8:12], "little")
    words = 7 + 4 * count
    swapped = b"".join(little[i:i + 4][::-1] for i in range(0, 4 * words, 4)) + little[4 * words:]
    assert mo_originals(swapped) == mo_originals(little)


def test_every_registered_client_and_server_error_has_a_title():
    missing = [status for status in HTTPStatus if status >= 400 and status not in TITLES]
    assert missing == []


def _subclasses(cls: type) -> list[type]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


def test_every_error_of_the_proxys_own_has_its_detail_translated():
    """A new ProxyError's stock detail is added to core/texts.py PROXY_DETAILS, then translated (catalogs update)."""
    shown = [cls for cls in _subclasses(errors.ProxyError) if cls is not errors.ClientGone]  # 499: never sent
    assert guard_errors.CheckRefused in shown  # the conflict guard's, in a module of their own
    untranslated = [cls.__name__ for cls in shown if text_id(own(cls.detail)) is None]
    assert untranslated == []
    assert len({text.id for text in PROXY_DETAILS}) == len(PROXY_DETAILS)
