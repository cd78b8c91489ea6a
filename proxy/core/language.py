"""Pick the language of an error from the request's Accept-Language (RFC 9110 §12.5.4).

The proxy's own texts exist in a fixed set of languages, `LANGUAGES`. A
client's language ranges are tried from the highest q-value down (ties in the
order written), and a range matches a language when either is a prefix of the
other, subtag by subtag (RFC 4647 basic filtering, plus the lookup step that
drops a range's last subtags): `de-CH` gets German, `zh` and `zh-Hans-CN` get
Simplified Chinese. `*` stands for the default; `q=0` refuses what it names.
When nothing matches, the default (the brand's `lang`) is used, since an error
is never worth a 406.

>>> negotiate("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5")
'fr'
>>> negotiate("pt-BR,pt;q=0.9")
'pt'
>>> negotiate("zh-CN,zh;q=0.9")
'zh-Hans'
>>> negotiate("it, nl;q=0.5", default="de")
'de'
>>> negotiate(None, default="ja")
'ja'
"""

from __future__ import annotations

import re
from functools import lru_cache

# The languages of the built-in texts, as they are written in `<html lang>` and Content-Language.
LANGUAGES = ("en", "de", "fr", "es", "pt", "ja", "zh-Hans")
DEFAULT = "en"
_LOWER = {tag.lower(): tag for tag in LANGUAGES}
# RFC 4647 language-range: 1*8ALPHA *("-" 1*8alphanum), or "*".
_RANGE = re.compile(r"\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*")
# RFC 9110 weight: q=0 to q=1 with at most three decimals ("q=0.5", "q=1.000").
_WEIGHT = re.compile(r"q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
# A region says which script Chinese is written in: these write Simplified. Taiwan, Hong
# Kong and Macao write Traditional, which the Simplified texts do not serve (browsers
# add a bare `zh` after `zh-TW` when their user reads both).
_SIMPLIFIED_REGIONS = frozenset({"cn", "sg", "my"})
MAX_RANGES = 32  # a browser sends a handful; the rest of a longer header is ignored


def supported(tag: str) -> str | None:
    """The language of LANGUAGES that serves `tag`, or None: what the brand's `lang` resolves to.

    >>> supported("de-CH"), supported("ZH-hans"), supported("zh-TW"), supported("it")
    ('de', 'zh-Hans', None, None)
    """
    found = _matches(_canonical(tag.strip().lower()))
    return found[0] if found else None


def parse(header: str) -> list[tuple[str, float]]:
    """The well-formed ranges of an Accept-Language value, lower case, with their weights, as written.

    Malformed items are skipped (hostile or broken input costs the client its
    own preference, nothing more).

    >>> parse("de-CH, de;q=0.9, en;Q=0.5, bad range, fr;q=2")
    [('de-ch', 1.0), ('de', 0.9), ('en', 0.5)]
    """
    ranges = []
    for item in header.split(",", MAX_RANGES)[:MAX_RANGES]:
        name, *params = item.split(";")
        name = name.strip().lower()
        if not name:
            continue  # "en,,de" and a trailing comma are allowed empty list elements
        weight: float | None = 1.0
        for param in params:
            param = param.strip().lower()
            match = _WEIGHT.fullmatch(param.replace(" ", ""))
            weight = float(match.group(1)) if match else None
        if weight is not None and _RANGE.fullmatch(name):
            ranges.append((name, weight))
    return ranges


@lru_cache(maxsize=512)
def negotiate(header: str | None, default: str = DEFAULT) -> str:
    """The language of LANGUAGES to answer in; `default` (one of them) when nothing matches."""
    if not header:
        return default
    ranges = parse(header)
    refused = {language for name, weight in ranges if weight == 0 and name != "*" for language in _filter(name)}
    wanted = sorted((item for item in ranges if item[1] > 0), key=lambda item: -item[1])  # stable: ties as written
    for name, _ in wanted:
        if name == "*":
            candidates = [default, *LANGUAGES]
        else:
            candidates = _matches(_canonical(name))
        for language in candidates:
            if language not in refused:
                return language
    return default


def _canonical(name: str) -> str:
    """`zh-cn` -> `zh-hans-cn`: the script a Chinese region implies, so it matches `zh-Hans`."""
    primary, _, rest = name.partition("-")
    if primary == "zh" and rest.split("-", 1)[0] in _SIMPLIFIED_REGIONS:
        return f"zh-hans-{rest}"
    return name


def _prefix(shorter: list[str], longer: list[str]) -> bool:
    return len(shorter) <= len(longer) and longer[:len(shorter)] == shorter


def _matches(name: str) -> list[str]:
    """Languages that `name` asks for: either one a prefix of the other (`de-ch` -> de, `zh` -> zh-Hans)."""
    subtags = name.split("-")
    return [
        tag for lower, tag in _LOWER.items()
        if _prefix(subtags, lower.split("-")) or _prefix(lower.split("-"), subtags)
    ]


def _filter(name: str) -> list[str]:
    """Languages that a refused range covers: only those it is a prefix of (`de-ch;q=0` keeps `de`)."""
    subtags = _canonical(name).split("-")
    return [tag for lower, tag in _LOWER.items() if _prefix(subtags, lower.split("-"))]
