"""charset: an upstream's declared charset is used when it is a real one, and never raises."""

from __future__ import annotations

import encodings
import time

import pytest

from proxy.core.charset import FALLBACK, decode, name
from proxy.core.rewrite import UpstreamReply, parse

TEXT = "Conflit : la commande a changé"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        pytest.param("text/plain; charset=utf-8", TEXT.encode(), TEXT, id="utf-8"),
        pytest.param("text/plain; charset=ISO-8859-1", TEXT.encode("latin-1"), TEXT, id="latin-1"),
        pytest.param("text/plain; charset=windows-1252", TEXT.encode("cp1252"), TEXT, id="windows-1252"),
        pytest.param('text/plain; Charset="Shift_JIS"', "競合".encode("shift_jis"), "競合", id="quoted-shift-jis"),
        pytest.param("text/plain;charset=UTF-16", TEXT.encode("utf-16"), TEXT, id="utf-16-with-bom"),
        pytest.param("text/plain", TEXT.encode(), TEXT, id="no-charset"),
        pytest.param("text/plain; charset=", TEXT.encode(), TEXT, id="empty-charset"),
        pytest.param("", TEXT.encode(), TEXT, id="no-content-type"),
        pytest.param("text/plain; charset=utf-8", b"bad \xff byte", "bad \ufffd byte", id="invalid-utf-8-replaced"),
    ],
)
def test_declared_charset_is_used(content_type: str, body: bytes, expected: str) -> None:
    assert decode(body, content_type) == expected


# Each of these once raised past the LookupError the parser caught, and the client got a 500.
HOSTILE = [
    pytest.param("undefined", id="undefined-always-raises"),
    pytest.param("idna", id="idna-refuses-replace"),
    pytest.param("punycode", id="punycode-ignores-replace"),
    pytest.param("utf-8\x00", id="nul-in-name"),
    pytest.param("x" * 10_000, id="very-long-name"),
    pytest.param("base64", id="bytes-to-bytes-codec"),
    pytest.param("rot13", id="text-to-text-codec"),
    pytest.param("x-klingon", id="unknown"),
    pytest.param("unicode_escape", id="python-escape-codec"),
]


@pytest.mark.parametrize("charset", HOSTILE)
def test_hostile_charsets_fall_back_to_utf8(charset: str) -> None:
    body = f"{TEXT} \\N{{BULLET}} xn--".encode() + b" \xff"
    assert decode(body, f"text/plain; charset={charset}") == f"{TEXT} \\N{{BULLET}} xn-- \ufffd"


@pytest.mark.parametrize("charset", HOSTILE)
def test_parse_never_raises_on_a_charset(charset: str) -> None:
    reply = UpstreamReply(409, {"Content-Type": f"application/json; charset={charset}"}, b'{"message": "Version conflict"}')
    parsed = parse(reply, reply.body)
    assert parsed.document == {"message": "Version conflict"}


def test_punycode_is_not_decoded() -> None:
    # Python's punycode decoder takes quadratic time: 64 KiB of digits took 430 ms.
    body = b"a" * 30_000 + b"-" + b"9" * 35_535
    start = time.process_time()  # CPU time: a busy machine does not add to it
    decode(body, "text/plain; charset=punycode")
    assert time.process_time() - start < 0.1


def test_only_the_first_charset_parameter_counts() -> None:
    assert name("text/plain; charset=latin-1; charset=utf-16") == "latin_1"


def test_names_outside_the_table_are_never_looked_up() -> None:
    # The codecs' search function caches every name it is asked about, known or not
    # (encodings._cache): a hostile upstream naming a new charset each time would grow it forever.
    reply = UpstreamReply(500, {"Content-Type": "text/plain; charset=x-unique-0001"}, b"boom")
    assert parse(reply, reply.body).text == "boom"
    assert "x_unique_0001" not in encodings._cache
