"""JSON Pointer (RFC 6901): address one value inside a parsed JSON document.

>>> resolve({"error": {"items": [{"message": "taken"}]}}, "/error/items/0/message")
'taken'
>>> resolve({"a": 1}, "/b") is MISSING
True
"""

from __future__ import annotations

import re
from typing import Any

MISSING = object()


# RFC 6901 §3: "~" is only ever the start of "~0" or "~1".
_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*")


def is_pointer(text: object) -> bool:
    return isinstance(text, str) and _POINTER.fullmatch(text) is not None


def escape(key: str) -> str:
    """A key as a pointer token: "~" is written "~0" and "/" is written "~1" (RFC 6901 §3).

    >>> "/" + "/".join(map(escape, ["a/b", "m~n", "0"]))
    '/a~1b/m~0n/0'
    """
    return key.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """The key a pointer token names: `escape` undone, "~1" before "~0" (so "~01" is "~1")."""
    return token.replace("~1", "/").replace("~0", "~")


def resolve(document: Any, pointer: str) -> Any:
    """The value at `pointer`, or MISSING; also MISSING when `pointer` is not a JSON pointer."""
    if pointer == "":
        return document
    if not is_pointer(pointer):  # "error/message", "/a~2b": RFC 6901 makes these errors, not guesses
        return MISSING
    value = document
    for token in pointer[1:].split("/"):
        token = unescape(token)
        if isinstance(value, dict):
            if token not in value:
                return MISSING
            value = value[token]
        elif isinstance(value, list):
            # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "١";
            # and no longer than the list's length, so int() never sees thousands of digits.
            if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
                return MISSING
            if len(token) > len(str(len(value))) or int(token) >= len(value):
                return MISSING
            value = value[int(token)]
        else:
            return MISSING
    return value
