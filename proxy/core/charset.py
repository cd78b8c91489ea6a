"""Decode an upstream body in the charset its Content-Type names, trusting nothing in it.

>>> decode(b"caf\\xe9", "text/plain; charset=ISO-8859-1")
'café'
>>> decode(b"caf\\xc3\\xa9", 'text/html; Charset="utf-8"')
'café'
>>> decode(b"caf\\xc3\\xa9 \\xff", "text/plain; charset=idna")  # a Python codec, not a charset
'café �'
"""

from __future__ import annotations

import encodings
from encodings.aliases import aliases

FALLBACK = "utf_8"

# The charsets are the names in Python's alias table and the codecs they point
# to, nothing else. That leaves out Python's own codecs that are no charset:
# idna refuses errors="replace", punycode takes time quadratic in the body,
# undefined always raises. It also keeps hostile names away from the codec
# registry, whose caches keep every name ever asked about. The few non-text
# codecs in the table (base64, rot13, ...) make bytes.decode raise LookupError.
_CHARSETS = frozenset(aliases) | frozenset(aliases.values())
_MAX_NAME = 40  # no name in the table is longer than 21 characters


def name(content_type: str) -> str:
    """The codec for the charset parameter of `content_type`; FALLBACK when absent or unknown.

    >>> name("text/html; charset=Windows-1252"), name("text/plain"), name("text/plain; charset=x-klingon")
    ('windows_1252', 'utf_8', 'utf_8')
    """
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            value = value.strip().strip('"')[: _MAX_NAME + 1]
            codec = encodings.normalize_encoding(value.lower())
            return codec if len(value) <= _MAX_NAME and codec in _CHARSETS else FALLBACK
    return FALLBACK


def decode(body: bytes, content_type: str) -> str:
    """`body` as text: in its declared charset, else (or when that fails in any way) UTF-8 with U+FFFD."""
    try:
        return body.decode(name(content_type), errors="replace")
    except (LookupError, UnicodeError, ValueError):
        return body.decode(FALLBACK, errors="replace")
