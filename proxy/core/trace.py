"""W3C Trace Context: the trace id of a request's `traceparent`, for its log line and its problem.

    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
                 version-trace id (32 hex)-parent id (16 hex)-flags

The proxy takes part in no trace: it forwards `traceparent` and `tracestate`
upstream as they came, and only reads the trace id so that an error a user
reports (its problem carries `trace_id`) leads to its trace. A header the
specification says to ignore gives no trace id, so a made-up one never
reaches a log line: version 00 is exactly four fields of lowercase hex, and
neither id is all zeros; version ff is invalid; a later version is read by
its first four fields when what follows them starts with "-" (Trace Context,
§3.2 and §4.3, "Versioning of traceparent").
"""

from __future__ import annotations

import re
from typing import Iterable

_HEX = "[0-9a-f]"
_VERSION_00 = re.compile(rf"00-({_HEX}{{32}})-({_HEX}{{16}})-{_HEX}{{2}}")
# A later version: the same four fields, then nothing or "-" and whatever that version adds.
_LATER = re.compile(rf"{_HEX}{{2}}-({_HEX}{{32}})-({_HEX}{{16}})-{_HEX}{{2}}(?:-.*)?", re.DOTALL)
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
_OWS = " \t"


def trace_id(value: str | None) -> str | None:
    """The trace id of one `traceparent` value, or None when the specification says to ignore it.

    >>> trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    '4bf92f3577b34da6a3ce929d0e0e4736'
    >>> trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01") is None  # upper case
    True
    >>> trace_id("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
    '4bf92f3577b34da6a3ce929d0e0e4736'
    """
    if value is None:
        return None
    value = value.strip(_OWS)
    if value.startswith("00"):
        match = _VERSION_00.fullmatch(value)
    elif value.startswith("ff"):
        return None
    else:
        match = _LATER.fullmatch(value)
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_PARENT:
        return None
    return match.group(1)


def from_headers(values: Iterable[str]) -> str | None:
    """The trace id of a request's `traceparent` header lines: one valid line, else None.

    Two lines (or one holding a list) cannot say which trace the request is in.

    >>> from_headers(["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
    '4bf92f3577b34da6a3ce929d0e0e4736'
    >>> from_headers([]) is None
    True
    """
    values = list(values)
    return trace_id(values[0]) if len(values) == 1 else None
