"""Pick an error's format from the request's Accept header (RFC 9110 §12.5.1).

>>> choose("text/html,application/xhtml+xml,*/*;q=0.8").media_type
'text/html'
>>> choose("application/json").media_type
'application/json'
>>> choose(None).media_type
'application/problem+json'
>>> choose("text/plain").kind
'text'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Choice:
    kind: str  # json | html | text
    media_type: str


PROBLEM = Choice("json", "application/problem+json")
JSON = Choice("json", "application/json")
HTML = Choice("html", "text/html")
TEXT = Choice("text", "text/plain")
# In order of preference when the client likes several equally: JSON first,
# since `*/*` (curl, most API clients) must get JSON.
_OFFERS = (PROBLEM, JSON, HTML, TEXT)
FIXED = {"json": PROBLEM, "html": HTML, "text": TEXT}


def _parse(accept: str) -> list[tuple[str, str, float]]:
    ranges = []
    for item in accept.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if "/" not in media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
                # "nan" and "inf" parse as floats but are no qvalue: malformed, like "abc".
                quality = max(0.0, min(1.0, quality)) if math.isfinite(quality) else 0.0
        main, _, sub = media.partition("/")
        ranges.append((main, sub, quality))
    return ranges


def _quality(offer: Choice, ranges: list[tuple[str, str, float]]) -> tuple[float, int]:
    """The quality the client gives `offer`, from its most specific matching range."""
    main, sub = offer.media_type.split("/")
    best: tuple[int, float] | None = None
    for range_main, range_sub, quality in ranges:
        if range_main == main and range_sub == sub:
            specificity = 2
        elif range_main == main and range_sub == "*":
            specificity = 1
        elif range_main == "*" and range_sub == "*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return (0.0, -1) if best is None else (best[1], best[0])


@lru_cache(maxsize=512)
def choose(accept: str | None) -> Choice:
    """The best format for this Accept value; problem+json when nothing fits."""
    if not accept or not accept.strip():
        return PROBLEM
    ranges = _parse(accept)
    best, best_key = PROBLEM, (0.0, -1, 0)
    for rank, offer in enumerate(_OFFERS):
        quality, specificity = _quality(offer, ranges)
        # Higher quality wins; then an explicitly named type over a wildcard match;
        # then our own order of preference.
        key = (quality, specificity, -rank)
        if quality > 0 and key > best_key:
            best, best_key = offer, key
    return best
