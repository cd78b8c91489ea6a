"""Raw HTTP/1.x requests, generated to break a request front, and a judge of the proxy's answers.

Shared by tests/functional/test_front_fuzz.py (a few hundred cases per request parser)
and bench/fuzz_front.py (as long as you like). One case is one client connection: one
request or several pipelined, each built from a request line, a header section and a body
that are mostly well formed but each a little wrong in some way (odd methods, targets with
raw or percent-encoded odd bytes, absolute, authority and asterisk forms, versions other
than 1.x; duplicate, folded, NUL-holding, bare-LF, huge and conflicting headers; chunked
bodies with bad sizes, extensions and trailers; truncated bodies), sometimes mutated a few
bytes further, written in pieces, or closed early.

Every case comes from its seed alone, so a failure replays from it:

>>> generate(7) == generate(7), generate(7) == generate(8)
(True, False)
>>> statuses(b"HTTP/1.1 100 Continue\\r\\n\\r\\nHTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
([100, 200], None)
>>> statuses(b"HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nok")
([200], 'the body is 2 bytes, Content-Length said 5')
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# --- The pieces a request is made of: mostly the first, sometimes any of the others ---------------

METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT", b"PROPFIND",
           b"M-SEARCH", b"get", b"Get", b"G\x00T", b"", b"GET GET", b"A" * 200, b"\xd0\x93\xd0\x95\xd0\xa2", b"POST\t",
           b"*", b"GE\rT", b"{}"]
TARGETS = [b"/", b"/ok", b"/a/b?x=1&y=2", b"/%00", b"/%2F%2f", b"/%", b"/%zz", b"/%C0%AF", b"/%ff%fe", b"//double",
           b"/../../etc/passwd", b"/./a/../b", b"/a#fragment", b"/\x80\xff", b"/\x7f", b"/a\tb", b"*",
           b"http://public.example/p?q", b"http://internal.example:99999/p", b"https://x/", b"HTTP://X/Y",
           b"http://u:p@host/p", b"http://[::1]:80/p", b"http://", b"public.example:443", b"", b"?only=query",
           b"/" + b"a" * 9000, b"/?" + b"&" * 300, b"/\xc3\xa9t\xc3\xa9", b"/a\\b", b"/a b", b"/;x=y",
           b"/%%32%65", b"/\x00", b"a/relative"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/1.10", b"http/1.1",
            b"HTTP/1", b"HTTP/1.1 ", b"", b"HTTP/01.1", b"HTTP/1.1x", b"HTTP /1.1", b"HTTP/9.9", b"HTTP/\xff.1"]
EOLS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]
HOSTS = [b"x", b"public.example", b"public.example:8080", b"", b"[::1]:80", b"a b", b"x\x00y", b"*", b"x" * 300,
         b"h\xc3\xa9.example", b"x:99999", b"@evil"]
LENGTHS = [b"-1", b"+5", b"5, 5", b"5,6", b"99999999999999999999999", b"0x10", b" 5 ", b"", b"1e3", b"\xff", b"5\x00"]
CODINGS = [b"chunked", b"Chunked", b"chunked, gzip", b"gzip, chunked", b" chunked", b"chunked\x00", b"identity",
           b"x-custom", b"chunked, chunked", b"", b"\tchunked", b"chunked;q=1"]
OTHER_HEADERS = [
    (b"Connection", [b"keep-alive", b"close", b"Upgrade", b"close, te", b"Keep-Alive, Upgrade", b"X-Forwarded-For",
                     b"Host", b"\xff", b"Transfer-Encoding"]),
    (b"Upgrade", [b"websocket", b"h2c", b"foo", b"websocket, h2c", b"HTTP/2.0", b""]),
    (b"Sec-WebSocket-Key", [b"dGhlIHNhbXBsZSBub25jZQ==", b"", b"!!"]),
    (b"Sec-WebSocket-Version", [b"13", b"8", b"x"]),
    (b"Expect", [b"100-continue", b"100-Continue", b"200-ok", b""]),
    (b"X-Request-ID", [b"abc-123", b"x" * 500, b"\x01\x02", b"a\tb", b"\xff\xfe"]),
    (b"Accept", [b"text/html", b"application/json", b"*/*;q=abc", b"text/html;q=nan", b"," * 200, b"\x00"]),
    (b"Accept-Language", [b"de-CH, fr;q=0.5", b"x" * 200, b"*;q=2", b"\xff"]),
    (b"Accept-Encoding", [b"gzip", b"br;q=1e400", b"identity;q=0"]),
    (b"Origin", [b"https://app.example.com", b"null", b"\xff", b"http://"]),
    (b"If-Match", [b'"v1"', b"*", b"W/", b'"' * 100]),
    (b"If-None-Match", [b"*", b'W/"x"', b"garbage"]),
    (b"X-Forwarded-For", [b"1.2.3.4", b"::1, 10.0.0.1", b"not an ip", b"1.2.3.4" * 100]),
    (b"Forwarded", [b"for=1.2.3.4;proto=https", b"for=", b";;;"]),
    (b"X-Real-IP", [b"1.2.3.4", b"x"]),
    (b"Content-Type", [b"application/json; charset=undefined", b"text/plain; charset=idna", b"multipart/form-data",
                       b";;;", b"application/json"]),
    (b"Content-Encoding", [b"gzip", b"br", b"deflate, gzip", b"x"]),
    (b"Range", [b"bytes=0-1", b"bytes=-", b"bytes=99999999999999999999-"]),
    (b"Cookie", [b"a=b", b"a=" + b"b" * 4000, b"\xff"]),
    (b"Authorization", [b"Basic Zm9vOmJhcg==", b"Bearer", b""]),
    (b"TE", [b"trailers", b"gzip", b"chunked"]),
    (b"X_Forwarded_For", [b"6.6.6.6"]),
    (b"Transfer_Encoding", [b"chunked"]),
    (b"Max-Forwards", [b"0", b"-1", b"x"]),
    (b"Keep-Alive", [b"timeout=5, max=1000", b"x"]),
]
ODD_NAMES = [b"X Space", b"X\x00Nul", b":authority", b"", b"Host ", b" Host", b"X-\xc3\xa9", b"X" * 9000, b"X:Colon",
             b"X\tTab", b"(x)", b"X-Empty"]
ODD_VALUES = [b"a\x00b", b"\x7f", b"\x80\xff", b"a\rb", b" spaced ", b"", b"x" * 9000, b"a\r\n b", b"a\n b",
              b"\tstarts with tab"]
CHUNK_SIZES = [b"zz", b"-1", b"0x10", b"1" * 20, b"f" * 17, b" 5", b"5 ", b"", b"+5", b"5\x00", b"\xff", b"10000000"]
EXTENSIONS = [b";a=b", b";;", b";" * 1000, b";a=\"q\"", b"; a = b", b";\xff", b";a=" + b"x" * 5000]
TRAILERS = [b"X-T: 1", b"Content-Length: 5", b"Transfer-Encoding: chunked", b"bad trailer", b"X-T: \x00",
            b"Host: other"]
BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b":", b"\t", b"\xff", b";", b",", b"0", b"\r\n\r\n", b"GET / HTTP/1.1\r\n"]
# How often a piece is the well-formed one, drawn per case: from mostly broken to nearly valid,
# so that some requests get past the parser and into the body, the handler and the upstream.
NORMAL = (0.75, 0.9, 0.97)


@dataclass(frozen=True)
class Case:
    """One client connection: the bytes it writes, in `parts` (a short pause between them), and how it ends.

    `ending` is `read` (read until the proxy closes), `close` (close without reading) or
    `abort` (reset the connection without reading).
    """

    seed: int
    parts: tuple[bytes, ...]
    ending: str = "read"
    pipelined: int = 1

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


class _Random(random.Random):
    normal = NORMAL[0]

    def pick(self, normal: bytes, odd: list[bytes]) -> bytes:
        """`normal`, or now and then one of `odd`."""
        return normal if self.random() < self.normal else self.choice(odd)


def generate(seed: int) -> Case:
    """The case of `seed`: one request, or up to four pipelined, maybe mutated, split and cut short."""
    rng = _Random(seed)
    rng.normal = rng.choice(NORMAL)
    count = 1 if rng.random() < 0.75 else rng.randint(2, 4)
    data = b"".join(_request(rng, last=index == count - 1) for index in range(count))
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 5])):
        data = _mutate(rng, data)
    if rng.random() < 0.08:
        data = data[:rng.randrange(len(data) + 1)]  # truncated: the rest never comes
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.choice([0, 0, 0, 1, 3])))
    parts = tuple(data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)]))
    ending = rng.choices(["read", "close", "abort"], [0.9, 0.05, 0.05])[0]
    return Case(seed, parts, ending, count)


def _request(rng: _Random, last: bool) -> bytes:
    method = rng.pick(rng.choice([b"GET", b"GET", b"POST", b"PUT", b"HEAD"]), METHODS)
    eol = rng.pick(b"\r\n", EOLS)
    line = method + b" " + rng.pick(rng.choice([b"/", b"/ok", b"/a/b?x=1"]), TARGETS) + b" " + rng.pick(b"HTTP/1.1", VERSIONS)
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.95:
        headers.append((b"Host", rng.pick(b"x", HOSTS)))
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        name, values = rng.choice(OTHER_HEADERS)
        headers.append((name, rng.choice(values)))
    if rng.random() < 0.1:
        headers.append((rng.choice(ODD_NAMES), b"x"))
    if rng.random() < 0.1:
        headers.append((b"X-Odd", rng.choice(ODD_VALUES)))
    if rng.random() < 0.03:
        headers += [(b"X-Many-%d" % index, b"x") for index in range(rng.choice([99, 101, 150]))]
    body = _body(rng, method, headers)
    if rng.random() < 0.1 and headers:
        headers.append(rng.choice(headers))  # a duplicate
    if last and rng.random() < 0.85:
        headers.append((b"Connection", b"close"))  # so most connections end as soon as they are answered
    if rng.random() < 0.2:
        rng.shuffle(headers)
    head = line + eol + b"".join(name + b":" + rng.pick(b" ", [b"", b"  ", b"\t"]) + value + eol
                                 for name, value in headers)
    return head + eol + body


def _body(rng: _Random, method: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    kind = rng.choices(["none", "length", "chunked", "both", "odd-length"],
                       [0.45 if method in (b"GET", b"HEAD") else 0.1, 0.3, 0.25, 0.05, 0.05])[0]
    payload = rng.choice([b"", b"x", b"hello", b'{"a": 1}', bytes(range(256)), b"y" * 70_000])
    if kind == "none":
        return b""
    if kind == "length":
        sent = payload[:rng.randrange(len(payload) + 1)] if rng.random() < 0.1 else payload  # short: it stalls
        extra = rng.choice([b"", b"", b"", b"surplus"])  # read as the start of a next request
        headers.append((b"Content-Length", b"%d" % len(payload)))
        return sent + extra
    if kind == "odd-length":
        headers.append((b"Content-Length", rng.choice(LENGTHS)))
        return payload
    headers.append((b"Transfer-Encoding", rng.pick(b"chunked", CODINGS)))
    if kind == "both":
        headers.append((b"Content-Length", rng.choice([b"0", b"3", b"100", b"-1"])))
    return _chunked(rng, payload)


def _chunked(rng: _Random, payload: bytes) -> bytes:
    eol = rng.pick(b"\r\n", [b"\n", b"\r", b""])
    out = []
    while payload:
        size = rng.randint(1, max(1, len(payload)))
        chunk, payload = payload[:size], payload[size:]
        size_line = rng.pick(b"%x" % len(chunk), CHUNK_SIZES) + (rng.choice(EXTENSIONS) if rng.random() < 0.1 else b"")
        out.append(size_line + eol + chunk + rng.pick(b"\r\n", [b"", b"\n", b"xx\r\n"]))
    last = rng.pick(b"0", [b"00", b"0;ext=1", b"0x0", b"", b"1"])
    trailers = b"".join(rng.choice(TRAILERS) + eol for _ in range(rng.choice([0, 0, 0, 1, 2])))
    ending = rng.pick(b"\r\n", [b"", b"\n", b"\r\n\r\n"])
    return b"".join(out) + last + eol + trailers + ending


def _mutate(rng: _Random, data: bytes) -> bytes:
    if not data:
        return rng.choice(BYTES)
    at = rng.randrange(len(data))
    kind = rng.randrange(4)
    if kind == 0:  # a byte replaced
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
    if kind == 1:  # bytes inserted
        return data[:at] + rng.choice(BYTES) + data[at:]
    span = rng.randint(1, 16)
    if kind == 2:  # a few bytes gone
        return data[:at] + data[at + span:]
    return data[:at] + data[at:at + span] * 2 + data[at + span:]  # a few bytes repeated


# --- Reading the answers back ---------------------------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: [^\r\n]*)?\r\n")


def statuses(data: bytes) -> tuple[list[int], str | None]:
    """The statuses of the responses in `data`, and why the rest is not a response (None: it all is).

    A response whose Content-Length body is followed at once by another response, or by
    the end, is read as bodiless: the answer to a HEAD.
    """
    found: list[int] = []
    at = 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        match = _STATUS_LINE.match(data, at)
        if match is None or end == -1:
            return found, f"not a response at byte {at}: {data[at:at + 80]!r}"
        status = int(match[1])
        found.append(status)
        fields: dict[bytes, bytes] = {}
        for line in data[match.end():end].split(b"\r\n") if end > match.end() else []:
            name, colon, value = line.partition(b":")
            if not colon or name != name.strip():
                return found, f"not a header line in response {len(found)}: {line[:80]!r}"
            fields[name.lower()] = value.strip()
        at = end + 4
        if status < 200 or status in (204, 304):
            continue
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            at, problem = _skip_chunks(data, at)
            if problem:
                return found, problem
        elif b"content-length" in fields:
            length = int(fields[b"content-length"])
            if at == len(data) or data.startswith(b"HTTP/1.", at):
                continue  # bodiless: a HEAD's answer
            if at + length > len(data):
                return found, f"the body is {len(data) - at} bytes, Content-Length said {length}"
            at += length
        else:
            at = len(data)  # until the connection closes
    return found, None


def _skip_chunks(data: bytes, at: int) -> tuple[int, str | None]:
    while True:
        end = data.find(b"\r\n", at)
        try:
            size = int(data[at:end].partition(b";")[0], 16) if end != -1 else -1
        except ValueError:
            size = -1
        if size < 0:
            return at, f"not a chunk size line at byte {at}: {data[at:at + 40]!r}"
        at = end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", at)  # no trailers are sent: the empty line ends the body
            return (trailer_end + 2, None) if trailer_end == at else (at, "no end after the last chunk")
        if data[at + size:at + size + 2] != b"\r\n":
            return at, "a chunk shorter than its size line said"
        at += size + 2
