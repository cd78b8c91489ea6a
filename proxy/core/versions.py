"""Version fields: what a 409 or 412 client needs to retry, kept without a rule.

An upstream that refuses a write because the resource moved on usually says
which version it holds now. Those fields become problem extensions under the
names the upstream gave them (no renaming: a client written against the
upstream reads what it always read), from the top level of its JSON body or,
when not there, from a top-level `error` object:

    {"error": "Document was updated by another user", "current_version": 8}
    -> {"current_version": 8}

Only scalars are kept (strings, numbers, booleans; never null, lists or
objects), strings only when short and safe (`scrub`). A route's rule that
names an extension of the same name replaces what is found here.
"""

from __future__ import annotations

import math
from typing import Any

from . import scrub

# The names APIs give the version a conflicting write should have started from, as they write them.
NAMES = (
    "version", "current_version", "currentVersion", "revision", "rev", "_rev",
    "updated_at", "updatedAt", "last_modified", "lastModified",
)
MAX_TEXT = 200  # an ETag-like string, a timestamp, a revision id; anything longer is not a version


def read(document: Any) -> dict[str, str | int | float | bool]:
    """The version fields of a parsed JSON body, top level first, then under `error`.

    >>> read({"error": "Document was updated by another user", "current_version": 8})
    {'current_version': 8}
    >>> read({"error": {"message": "Conflict", "_rev": "3-917fa23", "updatedAt": "2025-01-31T09:14:03Z"}})
    {'_rev': '3-917fa23', 'updatedAt': '2025-01-31T09:14:03Z'}
    >>> read({"version": {"major": 2}, "revision": None, "rev": [1]})
    {}
    """
    found: dict[str, str | int | float | bool] = {}
    if not isinstance(document, dict):
        return found
    nested = document.get("error")
    for source in (document, nested if isinstance(nested, dict) else {}):
        for name in NAMES:
            if name not in found and name in source and _scalar(source[name]):
                found[name] = source[name]
    return found


def _scalar(value: Any) -> bool:
    if isinstance(value, bool) or isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)  # json.loads reads NaN and Infinity, which JSON cannot write
    if isinstance(value, str):
        return 0 < len(value) <= MAX_TEXT and value.isprintable() and scrub.is_safe(value)
    return False
