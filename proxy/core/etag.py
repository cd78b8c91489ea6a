"""Entity tags (RFC 9110 §8.8.3): parsing, the two comparisons, and deriving one.

Pure: no I/O. The conflict guard uses these to give a strong ETag to a
representation that has none and to evaluate `If-Match` and `If-None-Match`:

    >>> parse_condition(['"v7", W/"v8"'])
    Condition(any=False, tags=(EntityTag(opaque='v7', weak=False), EntityTag(opaque='v8', weak=True)))
    >>> strong_match(EntityTag("v7"), EntityTag("v7", weak=True)), weak_match(EntityTag("v7"), EntityTag("v7", weak=True))
    (False, True)
    >>> str(from_body(b'{"id": 42}'))
    '"b-9vEzUDk0fY-lc6uP8wDSFg"'

A derived ETag is strong: it changes whenever the bytes (or the version)
change. The hash is BLAKE2b, 128 bits, not a secret: it only has to make two
different representations of one resource collide with negligible chance.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

# RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text. A comma is an etagc, so a list
# cannot be split on commas: it is scanned tag by tag.
_LIST_ITEM = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\U0010ffff]*)")?[ \t]*(,|$)')
_SAFE_VERSION = re.compile(r"[\x21\x23-\x7e]{1,64}")  # a version shown as is inside the quotes
MAX_TAGS = 64  # a condition listing more is refused: each one is compared on every write


@dataclass(frozen=True, slots=True)
class EntityTag:
    """`"v7"` is EntityTag("v7"); `W/"v7"` is EntityTag("v7", weak=True)."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'W/"{self.opaque}"' if self.weak else f'"{self.opaque}"'


@dataclass(frozen=True, slots=True)
class Condition:
    """An If-Match or If-None-Match value: `*` (any), or a list of entity tags."""

    any: bool = False
    tags: tuple[EntityTag, ...] = ()


def parse_etag(value: str | None) -> EntityTag | None:
    """One entity tag, or None when `value` is not exactly one.

    >>> parse_etag('W/"a,b"')
    EntityTag(opaque='a,b', weak=True)
    >>> parse_etag('v7') is None, parse_etag('"a" "b"') is None
    (True, True)
    """
    if value is None:
        return None
    condition = parse_condition([value])
    if condition is None or condition.any or len(condition.tags) != 1:
        return None
    return condition.tags[0]


def parse_condition(values: Iterable[str]) -> Condition | None:
    """Every line of one conditional header as one Condition; None when malformed.

    Empty list elements are allowed (RFC 9110 §5.6.1); `*` must stand alone.

    >>> parse_condition(["*"])
    Condition(any=True, tags=())
    >>> parse_condition(['"a"', ' , "b" ']).tags
    (EntityTag(opaque='a', weak=False), EntityTag(opaque='b', weak=False))
    >>> parse_condition(['*, "a"']) is None, parse_condition(['a']) is None, parse_condition([""]) is None
    (True, True, True)
    """
    text = ", ".join(values)
    if text.strip(" \t") == "*":
        return Condition(any=True)
    tags: list[EntityTag] = []
    position = 0
    while position < len(text):
        item = _LIST_ITEM.match(text, position)
        if item is None or item.end() == position:
            return None
        if item.group(2) is not None:
            tags.append(EntityTag(item.group(2), weak=item.group(1) is not None))
        elif item.group(0).strip(" \t,") or (item.group(3) == "" and not tags):
            return None
        position = item.end()
    if not tags or len(tags) > MAX_TAGS:
        return None
    return Condition(tags=tuple(tags))


def strong_match(a: EntityTag, b: EntityTag) -> bool:
    """RFC 9110 §8.8.3.2 strong comparison: neither weak, same opaque tag (If-Match uses it)."""
    return not a.weak and not b.weak and a.opaque == b.opaque


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    """Weak comparison: same opaque tag, weak or not (If-None-Match uses it)."""
    return a.opaque == b.opaque


def from_body(data: bytes) -> EntityTag:
    """The strong ETag of a representation's bytes (content coding already undone)."""
    return EntityTag("b-" + _digest(data))


def from_version(value: Any) -> EntityTag | None:
    """The strong ETag of a version found in a JSON field or a header; None when there is none.

    A short printable string or an integer is shown as is; anything else
    (a long or odd string, a float, an object) is hashed, canonically.

    >>> str(from_version(7)), str(from_version("2024-05-01T10:00:00Z")), str(from_version('a "quoted" one'))
    ('"7"', '"2024-05-01T10:00:00Z"', '"v-FTWsjD2jvhMQlN-ENsPcSg"')
    >>> from_version(None) is None, from_version(True) is None, from_version("") is None
    (True, True, True)
    """
    if value is None or isinstance(value, bool) or value == "":
        return None
    if isinstance(value, int) and abs(value) < 10**30:
        return EntityTag(str(value))
    if isinstance(value, str):
        if _SAFE_VERSION.fullmatch(value):
            return EntityTag(value)
        return EntityTag("v-" + _digest(value.encode("utf-8", "surrogatepass")))
    try:
        canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits, say: its text is still a faithful version
        canonical = repr(value).encode()
    return EntityTag("v-" + _digest(canonical))


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.blake2b(data, digest_size=16).digest()).rstrip(b"=").decode()
