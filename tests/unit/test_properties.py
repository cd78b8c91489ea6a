"""Properties of the pure core on generated input: status sets, Accept negotiation, JSON
pointers, the scrubber, upstream JSON bodies and custom JSON templates.

Every test is bounded (max_examples, deadline) and derandomized: the file runs in a few
seconds and a failure shows the same example on every run.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.negotiation import HTML, JSON, PROBLEM, TEXT, choose
from proxy.core.pointer import MISSING, escape, is_pointer, resolve, unescape
from proxy.core.rewrite import UpstreamReply, normalize, parse
from proxy.core.scrub import find_unsafe_in_json, unsafe_reason
from proxy.core.settings import ErrorPolicy
from proxy.core.status import StatusSet
from proxy.http.render import fill


def bounded(examples: int, deadline_ms: int = 1000) -> settings:
    return settings(max_examples=examples, deadline=deadline_ms, derandomize=True, database=None)


# --- Status sets ----------------------------------------------------------------------------------

ASCII_DIGITS = "0123456789"


def meaning(item: object) -> range | None:
    """The codes a status-set item stands for, written out plainly; None when it is not one."""
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        return None
    if isinstance(item, int):
        return range(item, item + 1) if 100 <= item <= 599 else None
    text = item.strip()
    if text and all(char in ASCII_DIGITS for char in text):
        significant = text.lstrip("0")
        code = int(significant) if 0 < len(significant) <= 3 else 0
        return range(code, code + 1) if 100 <= code <= 599 else None
    if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
        return range(int(text[0]) * 100, int(text[0]) * 100 + 100)
    low, dash, high = text.partition("-")
    low, high = low.rstrip(), high.lstrip()
    if dash and all(len(part) == 3 and all(char in ASCII_DIGITS for char in part) for part in (low, high)):
        if 100 <= int(low) <= int(high) <= 599:
            return range(int(low), int(high) + 1)
    return None


codes = st.integers(0, 700)
blank = st.sampled_from(["", " ", "\t", "\u00a0"])
status_items = st.one_of(
    codes,
    st.builds(lambda pad, zeros, code: f"{pad}{'0' * zeros}{code}{pad}", blank, st.integers(0, 2), codes),
    st.builds(lambda digit, tail: f"{digit}{tail}", st.integers(0, 9), st.sampled_from(["xx", "XX", "x", "xxx", "xx "])),
    st.builds(lambda low, left, right, high: f"{low}{left}-{right}{high}", codes, blank, blank, codes),
    # Digits str.isdigit() and \d take and int() either refuses or reads: none is a status here.
    st.sampled_from(["٤٠٩", "²00", "4٠9", "５xx", "١٠٠-٥٩٩", "1" * 5000, "0" * 4998 + "404"]),
    st.none(), st.booleans(), st.floats(), st.text(max_size=12), st.integers(-10**6, 10**6), st.lists(codes, max_size=2),
)


@bounded(250)
@given(st.lists(status_items, max_size=6))
def test_status_set_agrees_with_a_plain_reading(spec: list[object]) -> None:
    meanings = [meaning(item) for item in spec]
    if None in meanings:
        bad = spec[meanings.index(None)]
        with pytest.raises(ValueError) as info:
            StatusSet.parse(spec)
        assert len(info.value.args) == 1 and info.value.args[0] is bad
    else:
        statuses = StatusSet.parse(spec)
        for code in range(90, 611):
            assert (code in statuses) == any(code in codes for codes in meanings), code


# --- Negotiation ----------------------------------------------------------------------------------

OFFERS = (PROBLEM, JSON, HTML, TEXT)
media_ranges = st.sampled_from([
    "text/html", "application/json", "application/problem+json", "text/plain", "*/*", "text/*", "application/*",
    "image/png", "application/xhtml+xml", "TEXT/HTML", "", "html", "*", "/", "text/",
])
qvalues = st.one_of(
    st.floats().map(str), st.text(max_size=6),
    st.sampled_from(["0", "1", "0.5", "1.000", "abc", "", "nan", "-inf", "1e400", "-1", "1" * 400, "١", "0.5 "]),
)
parameters = st.one_of(qvalues.map(lambda q: f";q={q}"), st.text(max_size=8).map(lambda text: ";" + text))
accept_values = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.lists(st.builds(lambda media, params: media + "".join(params), media_ranges, st.lists(parameters, max_size=2)),
             max_size=6).map(", ".join),
)


@bounded(300)
@given(accept_values)
def test_choose_always_answers_with_a_format_we_render(accept: str | None) -> None:
    assert choose(accept) in OFFERS


@bounded(100)
@given(st.sampled_from(OFFERS), st.sampled_from(["", ";q=1", ";q=0.5", ";q=0.001", " ; Q=0.9", ";level=1"]))
def test_a_client_naming_one_format_gets_it(offer, parameter: str) -> None:
    assert choose(offer.media_type + parameter) is offer


@bounded(100)
@given(st.lists(media_ranges, min_size=1, max_size=5))
def test_a_client_refusing_everything_gets_problem_json(ranges: list[str]) -> None:
    assert choose(", ".join(f"{media};q=0" for media in ranges)) is PROBLEM


# --- JSON pointers --------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
keys = st.one_of(st.text(max_size=6), st.sampled_from(["a/b", "m~n", "~1", "~0", "/", "~", "0", "01", ""]))
documents = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)


@st.composite
def paths_into(draw) -> tuple[object, list[str | int], object]:
    """A document, a path of keys and indexes into it, and the value at its end."""
    document = draw(documents)
    path: list[str | int] = []
    value = document
    while isinstance(value, (dict, list)) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value))))
        path.append(key)
        value = value[key]
    return document, path, value


@bounded(150)
@given(paths_into())
def test_a_pointer_built_from_a_path_resolves_to_its_value(case) -> None:
    document, path, value = case
    pointer = "".join("/" + escape(str(token)) for token in path)
    assert is_pointer(pointer)
    assert resolve(document, pointer) is value


@bounded(200)
@given(st.text())
def test_escaping_round_trips(key: str) -> None:
    token = escape(key)
    assert "/" not in token
    assert unescape(token) == key
    assert is_pointer("/" + token)


pointer_texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.text(max_size=6), st.sampled_from(["0", "01", "-", "~", "~0", "~1", "~2", "²", "١", "9" * 5000])),
             max_size=5).map(lambda tokens: "".join("/" + token for token in tokens)),
)


@bounded(200)
@given(documents, pointer_texts)
def test_resolve_never_raises(document: object, pointer: str) -> None:
    found = resolve(document, pointer)
    if pointer and not is_pointer(pointer):
        assert found is MISSING


# --- The scrubber ---------------------------------------------------------------------------------

word = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True)
lower = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
upper = st.from_regex(r"[A-Z][A-Za-z0-9]{0,11}", fullmatch=True)
number = st.integers(1, 99_999)
message = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=60)


def shape(template: str, **parts: st.SearchStrategy) -> st.SearchStrategy[str]:
    return st.builds(template.format, **parts)


# One or more traces, statements or paths of each kind scrub's table lists, with generated names.
LEAKS = {
    "python traceback": st.one_of(
        shape('Traceback (most recent call last):\n  File "/{d}/{f}.py", line {n}, in {fn}', d=lower, f=lower, n=number, fn=word),
        shape('  File "/srv/{d}/{f}.py", line {n}, in {fn}\n    {fn}()', d=lower, f=lower, n=number, fn=word),
    ),
    "java stack trace": st.one_of(
        shape("\tat {p}.{q}.{c}.{m}({c}.java:{n})", p=lower, q=lower, c=upper, m=word, n=number),
        shape("Caused by: {p}.{q}.{c}Exception: {msg}", p=lower, q=lower, c=upper, msg=message),
    ),
    ".net stack trace": st.one_of(
        shape("   at {ns}.{c}.{m}() in C:\\src\\{c}.cs:line {n}", ns=upper, c=upper, m=upper, n=number),
        shape("System.{c}Exception: {msg}\r\n   at {m}({c} value)", c=upper, msg=message, m=word),
        shape('"System.{c}Exception: {msg}\\r\\n   at {m}()"', c=upper, msg=message.map(lambda text: text.replace("\\", "")), m=word),
    ),
    "php stack trace": shape("Stack trace:\n#0 /var/www/{f}.php({n}): {fn}()\n#1 {{main}}", f=lower, n=number, fn=word),
    "node.js stack trace": shape("    at {fn} (/{d}/{f}.js:{n}:{m})", fn=word, d=lower, f=lower, n=number, m=number),
    "go panic": shape("goroutine {n} [running]:\nmain.{fn}()\n\t/go/src/{d}/{f}.go:{n} +0x{n:x}", n=number, fn=word, d=lower, f=lower),
    "ruby backtrace": shape("{d}/{f}.rb:{n}:in `{fn}'", d=lower, f=lower, n=number, fn=word),
    "rust panic": shape("thread '{t}' panicked at src/{f}.rs:{n}:{m}:", t=lower, f=lower, n=number, m=number),
    "sql": st.one_of(
        shape("SELECT {c}, {d} FROM {t} WHERE {c} = {n}", c=lower, d=lower, t=lower, n=number),
        shape("INSERT INTO {t} ({c}, {d}) VALUES ({n}, {m})", t=lower, c=lower, d=lower, n=number, m=number),
        shape("UPDATE {t} SET {c} = {n} WHERE {d} = {m}", t=lower, c=lower, d=lower, n=number, m=number),
        shape('duplicate key value violates unique constraint "{t}_pkey"', t=lower),
    ),
    "filesystem path": st.one_of(
        shape("/var/{d}/{f}", d=lower, f=word),
        shape("C:\\{d}\\{f}.log", d=word, f=word),
        shape("/{d}/{e}/{f}.py", d=lower, e=lower, f=lower),
    ),
}


@st.composite
def texts_with_a_leak(draw) -> tuple[str, str]:
    """Arbitrary text, then a leak on its own line, then arbitrary text."""
    kind = draw(st.sampled_from(sorted(LEAKS)))
    before, after = draw(st.text(max_size=200)), draw(st.text(max_size=200))
    return kind, f"{before}\n{draw(LEAKS[kind])}\n{after}"


@bounded(300)
@given(texts_with_a_leak())
def test_a_planted_leak_never_passes(case) -> None:
    kind, text = case
    assert unsafe_reason(text) is not None, kind
    assert find_unsafe_in_json({"error": {"message": text}}) is not None


@bounded(200)
@given(texts_with_a_leak())
def test_a_planted_leak_never_passes_json_escaped(case) -> None:
    # A JSON body that failed to parse is scanned as text, escapes and all.
    kind, text = case
    assert unsafe_reason(json.dumps({"detail": text})) is not None, kind


# --- Upstream JSON bodies -------------------------------------------------------------------------

# What json.loads takes and orjson refuses: lone surrogates ("\ud800"), integers past 64 bits.
odd_strings = st.text(st.characters(categories=["Cs", "Ll", "Nd", "Zs"]), max_size=6)
odd_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(), odd_strings),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(odd_strings, children, max_size=3)),
    max_leaves=8,
)
problem_bodies = st.builds(
    # 1e400 and NaN are JSON orjson refuses, which sends the whole body to json.loads.
    lambda members, refused: (json.dumps(members)[:-1] + (', "r": 1e400}' if refused else "}")).encode(),
    st.dictionaries(st.sampled_from(["type", "title", "detail", "instance", "request_id", "code", "errors"]) | odd_strings,
                    odd_values, max_size=5),
    st.booleans(),
)


@bounded(200)
@given(problem_bodies, st.sampled_from(["application/problem+json", "application/json", "text/plain"]))
def test_any_upstream_json_gives_a_problem_that_can_be_written(body: bytes, media_type: str) -> None:
    reply = UpstreamReply(409, {"Content-Type": media_type, "ETag": '"v1"'}, body)
    problem = normalize(ErrorPolicy(), reply, parse(reply, body), None, instance="/x", request_id="r")
    assert orjson.loads(problem.to_json())["status"] == 409


# --- Custom JSON ----------------------------------------------------------------------------------

json_values = st.recursive(
    # orjson writes integers up to 64 bits, as the problem's JSON does.
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=10,
)
names = st.sampled_from(["status", "title", "detail", "request_id", "path", "method", "instance", "type", "nope", "current"])
template_strings = st.lists(st.one_of(names.map(lambda name: "${" + name + "}"), st.text(max_size=8)), max_size=4).map("".join)
templates = st.recursive(
    st.one_of(template_strings, st.none(), st.booleans(), st.integers(-1000, 1000)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)
template_values = st.fixed_dictionaries(
    {
        "status": st.integers(100, 599),
        "title": st.text(max_size=20),
        "detail": st.text(max_size=40),
        "request_id": st.text("0123456789abcdef", max_size=32),
        "path": st.text(max_size=20),
        "method": st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]),
        "instance": st.none() | st.text(max_size=20),
        "type": st.just("about:blank"),
    },
    optional={"current": json_values},
)


@bounded(150)
@given(templates, template_values)
def test_custom_json_is_always_json(template: object, values: dict) -> None:
    filled = fill(template, values)
    assert json.loads(orjson.dumps(filled)) == json.loads(json.dumps(filled))


@bounded(100)
@given(templates, template_values)
def test_status_placeholder_yields_the_status(template: object, values: dict) -> None:
    filled = fill({"code": "${status}", "text": "Error ${status}", "rest": [template, {"code": "${status}"}]}, values)
    assert filled["code"] == values["status"] and type(filled["code"]) is int
    assert filled["text"] == f"Error {values['status']}"
    assert filled["rest"][1]["code"] == values["status"]
