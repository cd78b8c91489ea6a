r"""Tell whether an upstream error text would leak internals to a client.

An upstream's error body becomes a problem's `detail` only when it holds
nothing a client should not see. `unsafe_reason` names the first thing it
finds, looking for traces before SQL and paths because a trace holds those
too and says more:

    reason                 what gives it away
    "python traceback"     Traceback (most recent call last):, File "x.py", line 12
    "java stack trace"     at com.x.Y.z(Y.java:42), Exception in thread, Caused by:, ... 12 more
    ".net stack trace"     at A.B.C() in C:\src\B.cs:line 42, System.XException: ... at
    "php stack trace"      Stack trace: #0 /var/www/..., PHP Fatal error:, in x.php on line 12
    "node.js stack trace"  at Object.<anonymous> (/app/index.js:10:5), node:internal/
    "go panic"             goroutine 1 [running]:, panic: (at a line start), main.go:42 +0x1d
    "ruby backtrace"       app/models/order.rb:12:in 'save', from bin/rails:4:in '<main>'
    "rust panic"           thread 'main' panicked at src/main.rs:2:5
    "sql"                  SQLSTATE, database error texts, driver exceptions, SQL statements
    "filesystem path"      /var/..., /app/... and other server roots, /x/y.py, C:\..., \\host\share
    "url credentials"      redis://:secret@cache:6379, postgres://app:hunter2@db/orders

>>> unsafe_reason('Traceback (most recent call last):\n  File "/app/orders.py", line 12, in save')
'python traceback'
>>> unsafe_reason("SELECT id, email FROM users WHERE id = 42")
'sql'
>>> unsafe_reason("Please update your profile and select a plan") is None
True

The patterns, and why no text makes them backtrack or read far ahead again
and again, are in `leaks`. A search is linear in the text with a small
constant (the slowest of a few hundred hostile 64 KiB bodies takes about
10 ms, tests/unit/test_scrub.py): each pattern is one pass, the .NET exception
line and its frame are found in a pass each and joined (`_ExceptionThenFrame`),
and a long text asked about twice is scanned once. No scan is cut short for
time, so none has to fail closed for it; JSON past its bounds does.
"""

from __future__ import annotations

import functools
import re

from . import leaks

# Deeper or larger JSON is reported rather than scanned in part: a filter that
# gives up must fail closed.
MAX_DEPTH = 32
MAX_VALUES = 20_000
TOO_DEEP = "json nested too deeply"
TOO_LARGE = "json too large"


class _ExceptionThenFrame:
    r""".NET's `System.XException: message` followed by a frame (`at X`): on the same line within
    leaks.WINDOW characters, or after a line break and a short run of blanks.

    Searching for the frame from each exception line would read the same text once for each of
    them; instead the next frame and the next line break are found once and kept until an
    exception line passes them, so the text is read about twice in all.

    >>> check = _ExceptionThenFrame(leaks.EXCEPTION_LINES[0])
    >>> bool(check.search("System.InvalidOperationException: Boom\r\n   at Run()"))
    True
    >>> bool(check.search("System.InvalidOperationException: Boom\nWe looked at it"))
    False
    """

    _frames = re.compile(leaks.FRAME_AT)
    _blanks = re.compile(leaks.BLANK_RUN)
    _breaks = re.compile(r"[\r\n]")

    def __init__(self, exception_line: str) -> None:
        self.pattern = exception_line  # necessary for a match: the one-pass filter of short texts uses it
        self._lines = re.compile(exception_line)

    def search(self, text: str) -> bool:
        frame = line_break = -1
        for line in self._lines.finditer(text):
            start = line.end()
            if frame < start:
                found = self._frames.search(text, start)
                if found is None:
                    return False
                frame = found.start()
            if frame - start > leaks.WINDOW:
                continue
            if line_break < start:
                found = self._breaks.search(text, start)
                line_break = len(text) if found is None else found.start()
            # Past a line break, only a short run of blanks may come before the frame.
            if line_break >= frame or self._blanks.fullmatch(text, line_break, frame):
                return True
        return False


# Checks that are not one pattern, by reason: an exception line, then a frame within a few lines.
_JOINED = {".net stack trace": leaks.EXCEPTION_LINES}


@functools.cache
def _checks() -> tuple[tuple[str, re.Pattern[str] | _ExceptionThenFrame], ...]:
    """Every reason's checks, in order. Compiled on first use, like `_any`: together they take
    some 80 ms, which a proxy that never meets an upstream's error text need not spend at start."""
    return tuple(
        (reason, check)
        for reason, patterns in leaks.PATTERNS
        for check in (*(re.compile(pattern, re.MULTILINE) for pattern in patterns),
                      *map(_ExceptionThenFrame, _JOINED.get(reason, ())))
    )


@functools.cache
def _any() -> re.Pattern[str]:
    # For a short string one search of every pattern at once costs less than a
    # search for each; on long texts separate patterns win, as each finds its
    # leading literal with a fast substring search.
    every = (pattern for reason, patterns in leaks.PATTERNS for pattern in (*patterns, *_JOINED.get(reason, ())))
    return re.compile("|".join(f"(?:{pattern})" for pattern in every), re.MULTILINE)


_SHORT = 256


def unsafe_reason(text: str) -> str | None:
    r"""Why `text` must not reach a client ("python traceback", "sql", ...), or None when it is safe.

    >>> unsafe_reason("Version conflict: document 42 was modified") is None
    True
    >>> unsafe_reason("open C:\\inetpub\\wwwroot\\web.config failed")
    'filesystem path'
    """
    if len(text) <= _SHORT:
        return _short_reason(text)
    return _reason(text)


def _reason(text: str) -> str | None:
    for reason, check in _checks():
        if check.search(text):
            return reason
    return None


@functools.lru_cache(maxsize=4096)
def _short_reason(text: str) -> str | None:
    # An upstream sends the same few messages and keys over and over: each is scanned once.
    return None if not _any().search(text) else _reason(text)


def is_safe(text: str) -> bool:
    return unsafe_reason(text) is None


def find_unsafe_in_json(value: object) -> str | None:
    """The reason for the first unsafe string in a parsed JSON value, keys included, else None.

    Strings are visited in document order, a key before its value. Past
    MAX_DEPTH nested containers or MAX_VALUES values the answer is TOO_DEEP or
    TOO_LARGE: what is not scanned is not vouched for.

    >>> find_unsafe_in_json({"errors": [{"field": "email", "message": "is taken"}]}) is None
    True
    >>> find_unsafe_in_json({"error": {"debug": {"/srv/app/orders.py": 12}}})
    'filesystem path'
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    safe: set[str] = set()  # keys repeat in every element of a list of objects
    visited = 0
    while stack:
        item, depth = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            return TOO_LARGE
        if isinstance(item, str):
            if item not in safe:
                if reason := unsafe_reason(item):
                    return reason
                safe.add(item)
        elif isinstance(item, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                return TOO_DEEP
            children = [part for pair in item.items() for part in pair] if isinstance(item, dict) else item
            # Pushed last-first so they pop in document order.
            stack.extend((child, depth + 1) for child in reversed(children))
    return None
