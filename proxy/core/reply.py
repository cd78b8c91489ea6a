"""An upstream response under interception, and its body read as text and JSON.

The body arrives as sent (possibly compressed, in any charset, possibly not
the JSON it claims to be); `decode_body` and `parse` turn it into what the
rules look at, bounded and never raising. Pure: no I/O.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from .pointer import MISSING


@dataclass(slots=True)
class UpstreamReply:
    """An upstream response under interception."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None  # None: larger than the cap (or undecodable), not parsed

    @property
    def media_type(self) -> str:
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()


@dataclass(slots=True)
class Parsed:
    text: str
    document: Any  # the parsed JSON value, or MISSING


def decode_body(raw: bytes | None, encoding: str, cap: int) -> bytes | None:
    """Undo a Content-Encoding within `cap` bytes of output; None past the cap or on bad data.

    A decompression bomb stops at the cap: output is produced at most cap+1 bytes at a time.
    """
    if raw is None:
        return None
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    try:
        if encoding in ("gzip", "x-gzip", "deflate"):
            wbits = 31 if "gzip" in encoding else (15 if raw[:1] == b"\x78" else -15)
            decoder = zlib.decompressobj(wbits)
            out = decoder.decompress(raw, cap + 1)
            # A stream cut short decodes without error: only `eof` tells it from a whole one.
            return out if len(out) <= cap and decoder.eof and not decoder.unconsumed_tail else None
        if encoding == "br":
            return _brotli(raw, cap)
    except (zlib.error, ValueError, OSError):
        return None
    return None


def _brotli(raw: bytes, cap: int) -> bytes | None:
    import brotli  # Brotli >= 1.2: the first release whose decoder can bound its output

    decoder = brotli.Decompressor()
    try:
        out = decoder.process(raw, output_buffer_limit=cap + 1)
    except brotli.error:
        return None
    return out if len(out) <= cap and decoder.is_finished() else None


def parse(reply: UpstreamReply, body: bytes | None) -> Parsed:
    from .charset import decode

    if body is None:
        return Parsed("", MISSING)
    # Any charset the upstream names, real or not, decodes or falls back to UTF-8: never raises.
    text = decode(body, reply.headers.get("Content-Type", ""))
    document: Any = MISSING
    if "json" in reply.media_type or text.lstrip()[:1] in ("{", "["):
        document = _loads(text)
        try:
            # json.loads takes what no JSON can be written with: a lone surrogate ("\ud800"), or an
            # integer past 64 bits when orjson refused the body for another reason (1e400). Kept, it
            # would fail the problem's own JSON later; a body with one is not read as JSON at all.
            orjson.dumps(document)
        except orjson.JSONEncodeError:
            document = MISSING
    return Parsed(text, document)


def _loads(text: str) -> Any:
    """The JSON document in `text`, or MISSING. orjson first; json for what orjson refuses
    and JSON allows (integers past 64 bits)."""
    try:
        return orjson.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # "[[[[..." deeper than the interpreter's stack
        return MISSING
