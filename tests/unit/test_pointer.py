"""pointer: RFC 6901 JSON Pointer resolution and syntax."""

from __future__ import annotations

import pytest

from proxy.core.pointer import MISSING, is_pointer, resolve

# RFC 6901 §5, the example document.
RFC_DOCUMENT = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        pytest.param("", RFC_DOCUMENT, id="whole-document"),
        pytest.param("/foo", ["bar", "baz"], id="foo"),
        pytest.param("/foo/0", "bar", id="foo-0"),
        pytest.param("/foo/1", "baz", id="foo-1"),
        pytest.param("/", 0, id="empty-key"),
        pytest.param("/a~1b", 1, id="escaped-slash"),
        pytest.param("/c%d", 2, id="percent"),
        pytest.param("/e^f", 3, id="caret"),
        pytest.param("/g|h", 4, id="pipe"),
        pytest.param("/i\\j", 5, id="backslash"),
        pytest.param('/k"l', 6, id="quote"),
        pytest.param("/ ", 7, id="space"),
        pytest.param("/m~0n", 8, id="escaped-tilde"),
    ],
)
def test_rfc6901_examples(pointer, expected):
    assert resolve(RFC_DOCUMENT, pointer) == expected


@pytest.mark.parametrize(
    ("document", "pointer", "expected"),
    [
        pytest.param({"error": {"message": "taken"}}, "/error/message", "taken", id="nested-object"),
        pytest.param({"errors": [{"message": "m0"}, {"message": "m1"}]}, "/errors/1/message", "m1", id="object-in-list"),
        pytest.param([10, 20, 30], "/2", 30, id="last-index"),
        pytest.param([10, 20, 30], "/0", 10, id="index-zero"),
        pytest.param({"a": None}, "/a", None, id="null-value-is-found"),
        pytest.param({"a": False}, "/a", False, id="false-value-is-found"),
        pytest.param({"0": "zero"}, "/0", "zero", id="digit-key-in-object"),
        pytest.param({"01": "x"}, "/01", "x", id="leading-zero-is-fine-as-object-key"),
        pytest.param({"~1": "tilde-one"}, "/~01", "tilde-one", id="tilde-zero-then-one-decodes-to-tilde-1"),
        pytest.param({"a": {"": {"b": 1}}}, "/a//b", 1, id="empty-key-in-the-middle"),
        pytest.param("scalar", "", "scalar", id="empty-pointer-on-scalar"),
    ],
)
def test_resolve_found(document, pointer, expected):
    assert resolve(document, pointer) == expected


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        pytest.param({"a": 1}, "/b", id="missing-key"),
        pytest.param({"a": {"b": 1}}, "/a/c", id="missing-nested-key"),
        pytest.param({"A": 1}, "/a", id="keys-are-case-sensitive"),
        pytest.param({"a/b": 1}, "/a/b", id="unescaped-slash-is-two-tokens"),
        pytest.param([1, 2], "/2", id="index-past-end"),
        pytest.param([], "/0", id="empty-list"),
        pytest.param([1, 2], "/-", id="dash-is-past-the-end"),
        pytest.param([1, 2], "/-1", id="negative-index"),
        pytest.param([1, 2], "/01", id="leading-zero-index"),
        pytest.param([1, 2], "/00", id="double-zero-index"),
        pytest.param([1, 2], "/1.0", id="decimal-index"),
        pytest.param([1, 2], "/ 1", id="space-before-index"),
        pytest.param([1, 2], "/+1", id="plus-sign-index"),
        pytest.param([1, 2], "/", id="empty-token-on-list"),
        pytest.param([1, 2, 3], "/²", id="superscript-digit-index"),
        pytest.param([1, 2, 3], "/١", id="arabic-indic-digit-index"),
        pytest.param({"a": "text"}, "/a/0", id="string-is-not-a-container"),
        pytest.param({"a": 5}, "/a/b", id="number-is-not-a-container"),
        pytest.param({"a": None}, "/a/b", id="null-is-not-a-container"),
        pytest.param({"a": True}, "/a/0", id="bool-is-not-a-container"),
        pytest.param(MISSING, "/a", id="missing-document"),
        pytest.param(None, "/a", id="null-document"),
    ],
)
def test_resolve_missing(document, pointer):
    assert resolve(document, pointer) is MISSING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", True, id="empty-is-whole-document"),
        pytest.param("/", True, id="slash"),
        pytest.param("/error/message", True, id="path"),
        pytest.param("/errors/0/message", True, id="with-index"),
        pytest.param("/a~0b/c~1d", True, id="valid-escapes"),
        pytest.param("/~01", True, id="tilde-zero-followed-by-one"),
        pytest.param("//", True, id="empty-tokens"),
        pytest.param("error/message", False, id="no-leading-slash"),
        pytest.param("#/error", False, id="uri-fragment-form"),
        pytest.param("/a~2b", False, id="tilde-two"),
        pytest.param("/a~", False, id="trailing-tilde"),
        pytest.param("/~/x", False, id="lone-tilde-token"),
        pytest.param(None, False, id="none"),
        pytest.param(5, False, id="int"),
        pytest.param(["/a"], False, id="list"),
    ],
)
def test_is_pointer(text, expected):
    assert is_pointer(text) is expected
