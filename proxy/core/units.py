"""Parse the human units used in config files: durations and byte sizes.

>>> parse_duration("1m30s")
90.0
>>> parse_size("64KiB")
65536
"""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # seconds, as a quoted YAML value or an env variable
_DURATION_SCALE = {"us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB|k|K|M|G)?")
_SIZE_SCALE = {
    None: 1, "B": 1,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3,
}


def parse_duration(value: object) -> float:
    """Seconds from `2s`, `150ms`, `200us`, `1m30s`, `1h` or a bare number of seconds.

    Raises ValueError for anything else, including negative values.
    """
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):  # YAML's .inf and .nan are floats too
            raise ValueError("not a duration")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("not a duration")
    text = value.strip()
    if not text:
        raise ValueError("not a duration")
    if _BARE_NUMBER.fullmatch(text):
        return float(text)
    pos, total = 0, 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _DURATION_SCALE[part.group(2)]
        pos = part.end()
    if pos != len(text):
        raise ValueError("not a duration")
    return total


def parse_size(value: object) -> int:
    """Bytes from `512`, `64KiB`, `10MB`, `1GiB` (k/M/G are binary, as in nginx)."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("not a size")
        return value
    if not isinstance(value, str):
        raise ValueError("not a size")
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError("not a size")
    return int(match.group(1)) * _SIZE_SCALE[match.group(2)]
