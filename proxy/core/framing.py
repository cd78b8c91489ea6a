"""What the proxy accepts of a client's request framing, whichever of aiohttp's parsers read it.

aiohttp parses requests with llhttp (C) or with its own pure-Python parser
(AIOHTTP_NO_EXTENSIONS=1), and the two let different things through: llhttp
takes `GET /p` as HTTP/0.9 and any `HTTP/2.0` line, and refuses HTTP/1.2 and
3.0 itself; the Python parser takes HTTP/1.2, 2.0 and 3.0, lowercase methods
(which it upper-cases) and a chunk size of any length. The server's
connection (`ops.connection`) checks each request against these rules as it
is parsed, so a client gets one answer:

    >>> version_error((1, 1)) is None, version_error((2, 0)).status, version_error((0, 9)).status
    (True, 505, 400)
    >>> method_is_valid(b"GET"), method_is_valid(b"get"), method_is_valid(b"M-SEARCH")
    (True, False, True)
    >>> method_error("GET") is None, method_error("CONNECT").status
    (True, 405)
    >>> upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    >>> upgrade_error("GET", CIMultiDict(upgrade)), upgrade_error("GET", CIMultiDict(upgrade, **{"Content-Length": "5"})).status
    (None, 400)
    >>> target_is_valid(b"/a?b=%C3%A9"), target_is_valid(b"/\\xc3\\xa9"), target_is_valid(b"/\\x7f")
    (True, False, False)
"""

from __future__ import annotations

import re

from multidict import CIMultiDict, CIMultiDictProxy, istr

from . import errors
from .headers import connection_tokens

# llhttp's own bound (a chunk size must fit 64 bits); the Python parser has none.
MAX_CHUNK_SIZE = 2**64 - 1
_HEAD_END = b"\r\n\r\n"
_SERVED = ((1, 0), (1, 1))
_UPGRADE = istr("Upgrade")  # folded once: a str name is folded and hashed at each lookup
_TRANSFER_ENCODING = istr("Transfer-Encoding")
_PAST_ASCII = re.compile(rb"[\x7f-\xff]")
# A method (a token, RFC 9110 §5.6.2), SP, and the start of a request target: a path, a scheme, or "*".
_REQUEST_LINE_START = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ (?:/|\*|[A-Za-z][A-Za-z0-9+.-]*:)")


def version_error(version: tuple[int, int]) -> errors.ProxyError | None:
    """None for HTTP/1.0 and HTTP/1.1; else the error to answer.

    HTTP/2.0 gets 505, which says what is wrong: both parsers hand that line
    over. Every other version gets 400, as llhttp answers HTTP/1.2 and HTTP/3.0
    before the proxy sees them, and HTTP/0.9 has no status line to read a 505 from.

    >>> version_error((1, 2)).status, version_error((3, 0)).status
    (400, 400)
    """
    if version in _SERVED:
        return None
    if version == (2, 0):
        return errors.VersionNotSupported()
    return errors.BadRequest("Only HTTP/1.0 and HTTP/1.1 requests are served here.")


def method_is_valid(method: bytes) -> bool:
    """Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET, and llhttp and nginx refuse it.

    The token's own syntax is the parser's to check; this adds only the case.
    """
    return method == method.upper()


def method_error(method: str) -> errors.ProxyError | None:
    """None, but for CONNECT: a tunnel is a forward proxy's job, answered 405 (as nginx does).

    Forwarded, a CONNECT made the upstream's 200 an unframed answer the client
    waited on for good, and sent its body to the upstream as the start of a
    next request.
    """
    return errors.MethodNotAllowed() if method == "CONNECT" else None


def coding_error(version: tuple[int, int],
                 headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> errors.ProxyError | None:
    """None, unless Transfer-Encoding is other than `chunked` alone (RFC 9112 §6.1).

    On HTTP/1.0 it puts the framing in doubt: 400. `chunked` twice: 400, as
    llhttp answers before this is asked. Any other coding: 501, as nginx
    answers; forwarded, the body went upstream de-chunked with its coding
    dropped, for the upstream to take as plain bytes.

    >>> from multidict import CIMultiDict
    >>> [coding_error((1, 1), CIMultiDict({"Transfer-Encoding": value})) for value in ("chunked", "Chunked ")]
    [None, None]
    >>> [type(coding_error(version, CIMultiDict({"Transfer-Encoding": value}))).__name__
    ...  for version, value in (((1, 1), "gzip, chunked"), ((1, 1), "chunked, chunked"), ((1, 0), "chunked"))]
    ['CodingNotImplemented', 'BadRequest', 'BadRequest']
    """
    values = headers.getall(_TRANSFER_ENCODING, ())
    if not values:
        return None
    if version == (1, 0):
        return errors.BadRequest("An HTTP/1.0 request has no Transfer-Encoding: its framing is in doubt.")
    codings = [coding for value in values for part in value.split(",") if (coding := part.strip().lower())]
    if codings == ["chunked"]:
        return None
    if all(coding == "chunked" for coding in codings):
        return errors.BadRequest("The chunked transfer coding is applied once.")
    return errors.CodingNotImplemented()


def is_websocket_upgrade(method: str, headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> bool:
    """A WebSocket handshake: a GET naming `websocket` in Upgrade and `upgrade` in Connection."""
    return (method == "GET" and headers.get("Upgrade", "").lower() == "websocket"
            and any(token.lower() == "upgrade" for token in connection_tokens(headers)))


def upgrade_error(method: str, headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> errors.ProxyError | None:
    """None, but for a WebSocket handshake that declares a body: 400.

    The handshake goes upstream without a body, so its Content-Length would
    promise bytes that never come (an upstream that reads them first, as h11
    does, never answered); and llhttp reads them as the first WebSocket frames.
    """
    if not is_websocket_upgrade(method, headers):
        return None
    if "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0":
        return errors.BadRequest("A WebSocket handshake has no body.")
    return None


def request_error(version: tuple[int, int], method: str,
                  headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> tuple[errors.ProxyError, str] | None:
    """The one verdict on a parsed request: None, or the error to answer and what to log of it.

    A request of a served version, not CONNECT and without Upgrade (nearly
    every one) is let through at once: none of the checks could refuse it.
    """
    if version in _SERVED and method != "CONNECT" and _UPGRADE not in headers and _TRANSFER_ENCODING not in headers:
        return None
    if (error := version_error(version)) is not None:
        return error, "HTTP/%d.%d" % version
    if (error := method_error(method)) is not None:
        return error, method
    if (error := coding_error(version, headers)) is not None:
        return error, "Transfer-Encoding: " + ", ".join(headers.getall(_TRANSFER_ENCODING))[:200]
    if (error := upgrade_error(method, headers)) is not None:
        return error, error.detail
    return None


def request_line_too_long(head: bytes, max_line_size: int) -> bool:
    """Whether `head`, bytes fed to the parser, start a request line with no end within `max_line_size`.

    >>> request_line_too_long(b"GET /" + b"a" * 20, 16), request_line_too_long(b"X-A: " + b"a" * 20, 16)
    (True, False)
    >>> request_line_too_long(b"GET /a HTTP/1.1\\r\\nX-A: " + b"a" * 20, 16)
    False
    """
    return _REQUEST_LINE_START.match(head) is not None and head.find(b"\r\n", 0, max_line_size + 2) == -1


def target_is_valid(target: bytes) -> bool:
    """A request target holds no DEL and no byte past ASCII (RFC 3986: those are percent-encoded).

    llhttp refuses them; the Python parser takes them, as text with surrogates
    where they are not UTF-8, which no upstream should be sent.
    """
    return _PAST_ASCII.search(target) is None


def head_end(carry: bytes, data: bytes, start: int = 0) -> int:
    """The offset in `data` just past the first end of a header section (an empty line)
    found from `start` on, or -1.

    `carry` is the last three bytes that came before `data` on the connection,
    so an end split between two reads is found too. Bytes inside a body that
    look like an end are found as well; the caller knows when it is in one.

    >>> head_end(b"", b"GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /b HTTP/1.1\\r\\n\\r\\n")
    28
    >>> head_end(b"", b"GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /b HTTP/1.1\\r\\n\\r\\n", 28)
    47
    >>> head_end(b"x\\r\\n", b"\\r\\nGET")
    2
    """
    if start == 0 and carry:
        # Only an end that straddles the two reads needs the carry; the rest is found in `data` alone.
        found = (carry + data[:3]).find(_HEAD_END)
        if found != -1:
            return found + len(_HEAD_END) - len(carry)
    found = data.find(_HEAD_END, start)
    return -1 if found == -1 else found + len(_HEAD_END)
