"""`messages`: the config's own words for single texts, per language.

    messages:
      de:
        409.title: Bearbeitungskonflikt
        409.detail: Jemand hat das Dokument geändert. Laden Sie es neu und speichern Sie erneut.
      en:
        page.brand: Acme Docs

Each key is a message id of the built-in texts (`409.detail`, `page.status`,
...; the English catalog, proxy/locale/en/LC_MESSAGES/errorproxy.po, lists
them all), each language one of the built-in ones. A text may use the
placeholders its English has (`%(when)s` in `429.retry_at`) and no others;
`%%` is a percent sign. Anything else is a problem with its path:

    messages.it: "it" is not a language of the built-in texts (de, en, es, fr, ja, pt, zh-Hans)
    messages.de.409.detial: "409.detial" is not a message id (did you mean 409.detail?)
"""

from __future__ import annotations

import difflib
import re
import struct
from functools import lru_cache
from importlib import resources
from typing import Any

from ..core.language import LANGUAGES
from .problems import Checker
from .values import key_path

_PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\)s|(?P<percent>%))?")
_LOWER = {language.lower(): language for language in LANGUAGES}
KNOWN = ", ".join(sorted(LANGUAGES))


def check_messages(check: Checker, path: str, value: Any) -> dict[str, dict[str, str]]:
    """`{language: {id: text}}`, each language and id known and each text's placeholders its English's."""
    out: dict[str, dict[str, str]] = {}
    sources = message_sources()
    for key, texts in check.mapping(path, value, None).items():
        language = _LOWER.get(key.lower())
        if language is None:
            check.fail(key_path(path, key), key, f"is not a language of the built-in texts ({KNOWN})")
            continue
        if language in out:
            check.fail(key_path(path, key), key, f"is {language} again (written another way above)")
            continue
        out[language] = {}
        for id, text in check.strings(key_path(path, key), texts).items():
            where = key_path(key_path(path, key), id)
            if id not in sources:
                close = difflib.get_close_matches(id, sources, n=1)
                check.fail(where, id, "is not a message id" + (f" (did you mean {close[0]}?)" if close else ""))
            elif not text.strip():
                check.fail(where, text, "is empty (leave the id out to keep the built-in text)")
            elif (problem := placeholder_problem(text, placeholders(sources[id]))) is not None:
                check.fail(where, text, problem)
            else:
                out[language][id] = text
    return out


def placeholders(source: str) -> frozenset[str]:
    """The `%(name)s` placeholders of an English text.

    >>> sorted(placeholders("after %(day)s %(month)s %(year)s"))
    ['day', 'month', 'year']
    """
    return frozenset(match["name"] for match in _PLACEHOLDER.finditer(source) if match["name"])


def placeholder_problem(text: str, allowed: frozenset[str]) -> str | None:
    """Why `text` cannot stand in for a text with placeholders `allowed`, or None.

    >>> placeholder_problem("Try again %(when)s.", frozenset({"when"})) is None
    True
    >>> placeholder_problem("50% off", frozenset())
    'has a % that is no placeholder (write %% for a percent sign)'
    >>> placeholder_problem("Try %(wann)s", frozenset({"when"}))
    'uses %(wann)s, which this text does not have (it has: %(when)s)'
    """
    for match in _PLACEHOLDER.finditer(text):
        name = match["name"]
        if name is None and match["percent"] is None:
            return "has a % that is no placeholder (write %% for a percent sign)"
        if name is not None and name not in allowed:
            have = ", ".join(f"%({item})s" for item in sorted(allowed)) or "none"
            return f"uses %({name})s, which this text does not have (it has: {have})"
    return None


@lru_cache(maxsize=1)
def message_sources() -> dict[str, str]:
    """Every message id with its English (a plural's: both forms), from the shipped English catalog."""
    data = (resources.files("proxy") / "locale" / "en" / "LC_MESSAGES" / "errorproxy.mo").read_bytes()
    sources = {}
    for original in mo_originals(data):
        context, separator, message = original.partition("\x04")
        if separator:
            sources[context] = message.replace("\x00", " ")
    return sources


def mo_originals(data: bytes) -> list[str]:
    """The original strings of a compiled gettext catalog (GNU .mo), "context\\x04message" for those with one.

    The format (GNU gettext manual, "The Format of GNU MO Files"): a magic
    number that gives the byte order, a revision, the number of strings N,
    and the offset of a table of N (length, offset) pairs for the originals.
    """
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">"
    _, count, originals = struct.unpack(f"{order}3I", data[4:16])
    found = []
    for index in range(count):
        length, offset = struct.unpack(f"{order}2I", data[originals + 8 * index:originals + 8 * index + 8])
        found.append(data[offset:offset + length].decode("utf-8"))
    return found
