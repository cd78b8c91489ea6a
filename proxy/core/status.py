"""HTTP status codes: reason phrases and sets of codes written as config.

A status set is written as single codes, classes and ranges:

>>> statuses = StatusSet.parse([409, "5xx", "420-429"])
>>> 409 in statuses, 503 in statuses, 404 in statuses
(True, True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

# ASCII digits only: \d and str.isdigit() also take "٤٠٩" and "²", and int() of
# thousands of digits raises. Leading zeros are allowed, as int() allows them.
_CODE = re.compile(r"0*([0-9]{1,3})")
_CLASS = re.compile(r"([1-5])xx")
_RANGE = re.compile(r"([0-9]{3})\s*-\s*([0-9]{3})")


def reason(status: int) -> str:
    """The standard reason phrase, or a generic one for unregistered codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return {4: "Client Error", 5: "Server Error"}.get(status // 100, "Unknown Status")


def is_status(code: int) -> bool:
    return 100 <= code <= 599


@dataclass(frozen=True, slots=True)
class StatusSet:
    """An immutable set of status codes, stored as inclusive ranges."""

    ranges: tuple[tuple[int, int], ...] = ()

    def __contains__(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)

    @classmethod
    def parse(cls, items: list[object]) -> StatusSet:
        """Raise ValueError naming the first item that is not a status, class or range."""
        ranges = []
        for item in items:
            ranges.append(_parse_item(item))
        return cls(tuple(ranges))


def _parse_item(item: object) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool):
        if is_status(item):
            return item, item
    elif isinstance(item, str):
        text = item.strip()
        if (match := _CODE.fullmatch(text)) and is_status(code := int(match.group(1))):
            return code, code
        if match := _CLASS.fullmatch(text):
            base = int(match.group(1)) * 100
            return base, base + 99
        if match := _RANGE.fullmatch(text):
            low, high = int(match.group(1)), int(match.group(2))
            if is_status(low) and is_status(high) and low <= high:
                return low, high
    raise ValueError(item)
