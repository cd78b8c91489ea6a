"""Config values as settings want them: bounded durations, sizes, counts, JSON, and quoting.

Each converter returns the value or raises ValueError whose text completes a
problem line (`path: "value" <text>`). The bounds are there because a value
that passes the loader is trusted at run time: an infinite timeout would reach
aiohttp's `ceil()` (OverflowError) or sleep forever at shutdown, a size past
2**63 would reach zlib as a C ssize_t.

>>> read_duration("1m30s"), read_size("64KiB"), read_count(2)
(90.0, 65536, 2)
>>> read_count("2KiB")
Traceback (most recent call last):
ValueError: is not a whole number
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any, Iterator

from ..core.units import parse_duration, parse_size

MAX_DURATION = 30 * 24 * 3600.0  # 720h: longer is a typo, and infinity (a 400-digit number) is a crash
MAX_SIZE = 1024**4  # 1TiB: past any buffer a request or a header could need; null means no limit
MAX_COUNT = 1_000_000  # connections, headers or retries; far past any real need
MAX_JSON_INT = 2**63  # json_template integers must fit 64 bits: the JSON encoder takes no more
SHOWN = 120  # most characters of a value quoted in a problem: a problem is a line, not a dump
MAX_PATH = 200  # most characters of a key path in a problem: 100 levels of 60-character keys would be 6000


def read_duration(value: object) -> float:
    """Seconds, from 0 to 720h (30 days).

    >>> read_duration("2s")
    2.0
    >>> read_duration("1" * 400)
    Traceback (most recent call last):
    ValueError: must be at most 720h (30 days)
    """
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError("is not a duration") from None
    except OverflowError:  # an integer too large for a float
        seconds = math.inf
    if not seconds <= MAX_DURATION:  # a digit string too long for a float parses as infinity
        raise ValueError("must be at most 720h (30 days)")
    return seconds


def read_positive_duration(value: object) -> float:
    """A duration above 0: a timeout of 0 would fail every request."""
    seconds = read_duration(value)
    if seconds <= 0:
        raise ValueError("must be more than 0")
    return seconds


def read_size(value: object) -> int:
    """Bytes, from 0 to 1TiB; units allowed (`64KiB`, `10MB`).

    >>> read_size("2TiB")
    Traceback (most recent call last):
    ValueError: is not a size
    >>> read_size(2**50)
    Traceback (most recent call last):
    ValueError: must be at most 1TiB
    """
    try:
        number = parse_size(value)
    except ValueError:  # also a digit string past int()'s 4300-digit limit
        raise ValueError("is not a size") from None
    if number > MAX_SIZE:
        raise ValueError("must be at most 1TiB")
    return number


def read_count(value: object) -> int:
    """A whole number of things (no units), from 0 to 1,000,000.

    >>> read_count("3")
    3
    >>> read_count(2.5)
    Traceback (most recent call last):
    ValueError: is not a whole number
    """
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():  # a quoted number, "3"
            value = int(text) if len(text) <= 9 else MAX_COUNT + 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("is not a whole number")
    if value > MAX_COUNT:
        raise ValueError(f"must be at most {MAX_COUNT}")
    return value


def json_problems(value: Any, path: str, seen: set[int] | None = None, depth: int = 0) -> Iterator[tuple[str, Any, str]]:
    """Each `(path, value, message)` that keeps `value` from being sent as JSON.

    YAML can spell what JSON cannot (`!!binary`, `!!set`, dates, integer
    keys); found here, they are a config problem instead of a 500 on every render.

    >>> list(json_problems({"a": [1, b"x"], 2: None}, "t"))
    [('t.a[1]', b'x', 'is binary data (!!binary), not a JSON value'), ('t', 2, 'is not a string key (JSON object keys are strings: quote it)')]
    """
    seen = set() if seen is None else seen
    if depth > 128:  # YAML nesting is bounded tighter; this stops a cycle in data built in Python
        yield path, value, "is nested deeper than 128 levels"
        return
    if isinstance(value, (dict, list)):
        if id(value) in seen:
            return  # the same object under another alias: checked once
        seen.add(id(value))
        items = value.items() if isinstance(value, dict) else ((f"[{i}]", item) for i, item in enumerate(value))
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                yield path, key, "is not a string key (JSON object keys are strings: quote it)"
                continue
            where = path + key if isinstance(value, list) else key_path(path, key)
            yield from json_problems(item, where, seen, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -MAX_JSON_INT <= value < MAX_JSON_INT:
            yield path, value, "is too large: JSON integers here fit in 64 bits"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, value, "is not a finite number"
    elif isinstance(value, (bytes, bytearray)):
        yield path, value, "is binary data (!!binary), not a JSON value"
    elif isinstance(value, (set, frozenset)):
        yield path, value, "is a set (!!set), not a JSON value: use a list"
    elif isinstance(value, (datetime.date, datetime.datetime)):
        yield path, value, "is a date, not a JSON value: quote it to keep it as text"
    else:
        yield path, value, "is not a JSON value (string, number, true, false, null, list or mapping)"


def key_path(path: str, key: object) -> str:
    """The path of `key` inside the mapping at `path`, for a problem line.

    A key is written as it is when it reads plainly on one line; otherwise
    (a line break, a control character, 60 characters or more, not a string)
    it is quoted as `show` quotes values, so a problem stays one short line.

    >>> key_path("upstreams", "legacy"), key_path("", "listen"), key_path("brand", 7)
    ('upstreams.legacy', 'listen', 'brand.7')
    >>> key_path("upstreams", "a\\nb"), key_path("messages", "x" * 99)[:20]
    ('upstreams."a\\\\nb"', 'messages."xxxxxxxxxx')
    """
    plain = isinstance(key, str) and 0 < len(key) < 60 and key.isprintable()
    name = key if plain else show(key, 40)
    return f"{path}.{name}" if path else name


def short_path(path: str) -> str:
    """`path`, cut in the middle past MAX_PATH characters: its start and its end say where.

    >>> short_path("defaults.json_template" + ".deeper" * 40 + ".x")[-29:]
    'deeper.deeper.deeper.deeper.x'
    >>> len(short_path("a" * 5000))
    200
    """
    if len(path) <= MAX_PATH:
        return path
    half = MAX_PATH // 2
    return f"{path[:half]}…{path[-(MAX_PATH - half - 1):]}"


def show(value: object, limit: int = SHOWN) -> str:
    """`value` as quoted in a problem line: JSON's spelling, cut at `limit` characters.

    Never raises and never renders more than it shows, whatever the value:
    an alias-expanded structure, an integer past str()'s digit limit, a cycle.

    >>> show("legasy"), show(None), show([1, True, {"a": 1.5}])
    ('"legasy"', 'null', '[1, true, {"a": 1.5}]')
    >>> show(list(range(100)), limit=20)
    '[0, 1, 2, 3, 4, 5, …'
    """
    parts: list[str] = []
    budget = [limit + 1]

    def put(text: str) -> bool:
        parts.append(text)
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(item: object) -> bool:
        if isinstance(item, str):
            return put(_visible(json.dumps(item[:limit], ensure_ascii=False)))
        if item is None or isinstance(item, bool):
            return put(json.dumps(item))
        if isinstance(item, int):
            try:
                return put(str(item))
            except ValueError:  # past str()'s 4300-digit limit
                return put(f"<a number of {int(item.bit_length() * 0.30103) + 1} digits>")
        if isinstance(item, float):
            return put(json.dumps(item))
        if isinstance(item, (dict, list, tuple)):
            close = "}" if isinstance(item, dict) else "]"
            if not put("{" if isinstance(item, dict) else "["):
                return False
            pairs = item.items() if isinstance(item, dict) else ((None, x) for x in item)
            for index, (key, member) in enumerate(pairs):
                if index and not put(", "):
                    return False
                if isinstance(item, dict) and not (walk(key if isinstance(key, str) else show(key, 40)) and put(": ")):
                    return False
                if not walk(member):
                    return False
            return put(close)
        return walk(_text(item))

    walk(value)
    text = "".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _visible(quoted: str) -> str:
    """`quoted` with what JSON leaves raw but a terminal does not show as itself escaped too.

    json.dumps escapes only C0 controls: U+2028, NEL (U+0085) and the C1 controls
    would break a problem line in two or drive the terminal it is printed on.

    >>> _visible('"a\\u2028b\\x9b"')
    '"a\\\\u2028b\\\\u009b"'
    """
    if quoted.isprintable():
        return quoted
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in quoted)


def _text(item: object) -> str:
    """A value JSON has no spelling for (bytes, a set, a date), as Python writes it."""
    try:
        return str(item)[:SHOWN]
    except Exception:  # noqa: BLE001 - an object whose str() fails still gets a name
        return f"<{type(item).__name__}>"
