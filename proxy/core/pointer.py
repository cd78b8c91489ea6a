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


def resolve(document: Any, pointer: str) -> Any:
    """The value at `pointer`, or MISSING."""
    if pointer == "":
        return document
    value = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                return MISSING
            value = value[token]
        elif isinstance(value, list):
            # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "١".
            if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
                return MISSING
            if int(token) >= len(value):
                return MISSING
            value = value[int(token)]
        else:
            return MISSING
    return value
