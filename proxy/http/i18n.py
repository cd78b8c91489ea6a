"""The proxy's own texts in the client's language: gettext catalogs, then the config's overrides.

Every text has a stable id, its gettext message context (`409.detail`,
`page.status`, ...). The compiled catalogs ship in the package,
proxy/locale/<language>/LC_MESSAGES/errorproxy.mo, one per language of
`core.language.LANGUAGES` (English too: its catalog lists every id); the
config's `messages` replace single texts of one language. Which catalog
answers a request is `Texts.choose(accept_language)`:

    texts = Texts(default="de", overrides={"de": {"409.title": "Bearbeitungskonflikt"}})
    catalog = texts.choose("fr-CH, fr;q=0.9")   # the French catalog
    catalog.localize(problem)                   # its default title and detail in French

Only the proxy's own words are translated: a status's standard title and the
details that are `core.texts.Text`. A detail the upstream wrote stays as
written.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gettext
import re
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Mapping

from ..core.language import DEFAULT, LANGUAGES, negotiate
from ..core.problem import Problem
from ..core.texts import CLASS_TITLES, N_, TITLES, text_id, title_id

DOMAIN = "errorproxy"
LOCALE = resources.files("proxy") / "locale"
_LOCALIZED = 1024  # problems whose translation a catalog remembers (then it starts afresh)
_SOURCE_TITLES = {text.id: text for text in (*TITLES.values(), *CLASS_TITLES.values())}


def directory(language: str) -> str:
    """gettext's spelling of a language tag, as the catalog's directory is named.

    >>> directory("zh-Hans"), directory("de")
    ('zh_Hans', 'de')
    """
    return language.replace("-", "_")


@lru_cache(maxsize=None)
def compiled(language: str) -> gettext.GNUTranslations:
    """The shipped catalog of `language`, read once per process."""
    with (LOCALE / directory(language) / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as file:
        return gettext.GNUTranslations(file)


class Catalog:
    """The texts of one language: its compiled catalog, under the config's overrides for it.

    Texts come back as written in the catalog, placeholders (`%(when)s`) and all:
    the caller formats them, and escapes them where they land in HTML.
    """

    def __init__(self, language: str, overrides: Mapping[str, str] | None = None) -> None:
        self.language = language
        self._translations = compiled(language)
        self._overrides = dict(overrides or {})
        # What `localize` changes, by (status, title, detail): worked out once for each problem seen.
        self._localized: dict[tuple[int, str, str], dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"Catalog({self.language!r})"

    def pgettext(self, id: str, source: str) -> str:
        """The text of message `id`, whose English is `source`."""
        override = self._overrides.get(id)
        return override if override is not None else self._translations.pgettext(id, source)

    def npgettext(self, id: str, singular: str, plural: str, count: int) -> str:
        """The text of message `id` for `count` things (one override serves every count)."""
        override = self._overrides.get(id)
        return override if override is not None else self._translations.npgettext(id, singular, plural, count)

    def gettext(self, message: str) -> str:
        """A text without an id: only an override template's own `{% trans %}`, found by its English."""
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self._translations.ngettext(singular, plural, count)

    def localize(self, problem: Problem) -> Problem:
        """`problem` with its default title and detail in this language; anything else unchanged.

        A title is translated when it is the status's standard phrase (its
        id from `core.texts.title_id`); a detail when it is one of the proxy's
        own texts. Untranslated (English, no override) leaves them as they were.
        """
        seen = (problem.status, problem.title, problem.detail)
        changes = self._localized.get(seen)
        if changes is None:
            changes = self._changes(problem)
            if len(self._localized) >= _LOCALIZED:
                self._localized.clear()
            self._localized[seen] = changes
        return dataclasses.replace(problem, **changes) if changes else problem

    def _changes(self, problem: Problem) -> dict[str, str]:
        changes = {}
        if (key := title_id(problem.status, problem.title)) is not None:
            source = _SOURCE_TITLES[key]
            title = self.pgettext(key, source)
            if title != source:
                changes["title"] = title
        if (key := text_id(problem.detail)) is not None:
            detail = self.pgettext(key, problem.detail)
            if detail != problem.detail:
                changes["detail"] = detail
        return changes


class Texts:
    """Every language's catalog for one configuration: the default language and the overrides."""

    def __init__(self, default: str = DEFAULT, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        if default not in LANGUAGES:
            raise ValueError(f"{default!r} is not one of {', '.join(LANGUAGES)}")
        self.default = default
        overrides = overrides or {}
        self.catalogs = {language: Catalog(language, overrides.get(language)) for language in LANGUAGES}

    def choose(self, accept_language: str | None) -> Catalog:
        """The catalog to answer in, from the request's Accept-Language (None or empty: the default)."""
        return self.catalogs[negotiate(accept_language, self.default)]


# Retry-After comes from the upstream: hostile. Seconds are ASCII digits only
# (str.isdigit() also takes "²", which int() refuses, and "٣"), at most ten
# of them: 2**31, the most RFC 9111 asks a recipient to represent, has ten,
# and int() refuses more than 4,300. A date is at most a few dozen characters.
_SECONDS = re.compile(r"[0-9]{1,10}")
_MAX_DATE = 64
_MONTHS = (
    N_("month.1", "Jan"), N_("month.2", "Feb"), N_("month.3", "Mar"), N_("month.4", "Apr"),
    N_("month.5", "May"), N_("month.6", "Jun"), N_("month.7", "Jul"), N_("month.8", "Aug"),
    N_("month.9", "Sep"), N_("month.10", "Oct"), N_("month.11", "Nov"), N_("month.12", "Dec"),
)


def retry_after_text(value: str | None, now: datetime | None = None, catalog: Catalog | None = None) -> str | None:
    """Retry-After as words in `catalog`'s language (English without one); None for a value that is neither.

    The words finish a sentence ("You can try again {when}."), so each
    language's catalog says them in the form its sentences need.

    >>> retry_after_text("90")
    'in 2 minutes'
    >>> retry_after_text("90", catalog=Catalog("de")), retry_after_text("90", catalog=Catalog("ja"))
    ('in 2 Minuten', '2分後')
    >>> retry_after_text("²") is None
    True
    """
    if not value:
        return None
    catalog = catalog or _english()
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = int(value)
        if seconds < 60:
            return _count(catalog.npgettext("retry.seconds", "in %(num)s second", "in %(num)s seconds", seconds), seconds)
        minutes = round(seconds / 60)
        if minutes < 120:
            return _count(catalog.npgettext("retry.minutes", "in %(num)s minute", "in %(num)s minutes", minutes), minutes)
        hours = round(minutes / 60)
        if hours < 48:
            return _count(catalog.npgettext("retry.hours", "in about %(num)s hour", "in about %(num)s hours", hours), hours)
        days = round(hours / 24)
        return _count(catalog.npgettext("retry.days", "in about %(num)s day", "in about %(num)s days", days), days)
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
    time = f"{when:%H:%M}"
    if when.date() == now.date():
        return catalog.pgettext("retry.time", "after %(time)s UTC") % {"time": time}
    month = _MONTHS[when.month - 1]
    values = {"day": when.day, "month": catalog.pgettext(month.id, month), "year": when.year, "time": time}
    return catalog.pgettext("retry.date", "after %(day)s %(month)s %(year)s %(time)s UTC") % values


def _count(text: str, number: int) -> str:
    return text % {"num": number}


@lru_cache(maxsize=1)
def _english() -> Catalog:
    return Catalog("en")
