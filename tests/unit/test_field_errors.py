"""field_errors: every framework's shape of field errors in, one `errors` list out."""

from __future__ import annotations

import pytest

from proxy.core.field_errors import MAX_DETAIL, MAX_ENTRIES, MAX_POINTER, MAX_SCANNED, read, summary

TRACE = 'Traceback (most recent call last):\n  File "/srv/app/forms.py", line 3, in clean'


def e(detail: str, pointer: str | None = None, **place: str) -> dict[str, str]:
    """An expected entry: `pointer`, or `parameter` and `in`, then `detail`."""
    entry = {"pointer": pointer} if pointer is not None else {}
    return {**entry, **place, "detail": detail}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # errors: [{field, message}] and its spellings
        pytest.param({"errors": [{"field": "title", "message": "can't be blank"}]},
                     [e("can't be blank", "/title")], id="errors-field-message"),
        pytest.param({"errors": [{"field": "title", "msg": "required"}, {"field": "body", "msg": "too short"}]},
                     [e("required", "/title"), e("too short", "/body")], id="errors-field-msg"),
        pytest.param({"errors": [{"path": "address.city", "message": "is required"}]},
                     [e("is required", "/address/city")], id="errors-dotted-path"),
        pytest.param({"errors": [{"path": "items[2].name", "message": "is required"}]},
                     [e("is required", "/items/2/name")], id="errors-bracket-index"),
        pytest.param({"errors": [{"path": ["items", 2, "name"], "message": "is required"}]},
                     [e("is required", "/items/2/name")], id="errors-path-list-joi"),
        pytest.param({"errors": [{"type": "field", "path": "q", "location": "query", "msg": "Invalid value"}]},
                     [e("Invalid value", parameter="q", **{"in": "query"})], id="express-validator-query"),
        pytest.param({"errors": [{"type": "field", "path": "email", "location": "body", "msg": "Invalid value"}]},
                     [e("Invalid value", "/email")], id="express-validator-body"),
        pytest.param({"status": 400, "errors": [{"field": "title", "defaultMessage": "must not be blank",
                                                 "rejectedValue": "", "objectName": "document"}]},
                     [e("must not be blank", "/title")], id="spring-binding-errors"),
        pytest.param({"errors": [{"status": "422", "source": {"pointer": "/data/attributes/title"},
                                  "title": "Invalid Attribute", "detail": "must contain at least two characters"}]},
                     [e("must contain at least two characters", "/data/attributes/title")], id="jsonapi-pointer"),
        pytest.param({"errors": [{"source": {"parameter": "include"}, "title": "Invalid Query Parameter"}]},
                     [e("Invalid Query Parameter", parameter="include", **{"in": "query"})], id="jsonapi-parameter"),
        pytest.param({"errors": [{"source": {"header": "X-Tenant"}, "detail": "unknown tenant"}]},
                     [e("unknown tenant", parameter="X-Tenant", **{"in": "header"})], id="jsonapi-header"),
        pytest.param({"type": "https://example.net/validation-error", "title": "Your request is not valid.",
                      "errors": [{"detail": "must be a positive integer", "pointer": "#/age"},
                                 {"detail": "must be 'green', 'red' or 'blue'", "pointer": "#/profile/color"}]},
                     [e("must be a positive integer", "/age"), e("must be 'green', 'red' or 'blue'", "/profile/color")],
                     id="rfc9457-example"),
        pytest.param({"errors": [{"pointer": "#/a~1b/m%20n", "detail": "bad"}]}, [e("bad", "/a~1b/m n")],
                     id="fragment-pointer-escapes"),
        pytest.param({"errors": ["Title can't be blank", "Body is too short"]},
                     [e("Title can't be blank"), e("Body is too short")], id="errors-plain-strings"),
        pytest.param({"error": {"code": 400, "message": "Invalid", "errors": [{"field": "q", "message": "bad"}]}},
                     [e("bad", "/q")], id="error-errors"),
        # errors: {field: [messages]}
        pytest.param({"message": "The given data was invalid.",
                      "errors": {"email": ["The email field is required.", "The email must be valid."]}},
                     [e("The email field is required.", "/email"), e("The email must be valid.", "/email")],
                     id="laravel-errors-mapping"),
        pytest.param({"errors": {"title": "can't be blank"}}, [e("can't be blank", "/title")], id="errors-mapping-string"),
        pytest.param({"errors": {"address": {"city": ["is required"]}}}, [e("is required", "/address/city")],
                     id="errors-mapping-nested"),
        pytest.param({"errors": {"items": [{}, {"name": ["is required"]}]}}, [e("is required", "/items/1/name")],
                     id="errors-mapping-list-of-objects"),
        pytest.param({"errors": {"non_field_errors": ["Passwords do not match"]}}, [e("Passwords do not match")],
                     id="errors-mapping-non-field"),
        pytest.param({"errors": {"a/b": ["bad"], "m~n": ["worse"]}}, [e("bad", "/a~1b"), e("worse", "/m~0n")],
                     id="errors-mapping-keys-escaped"),
        # FastAPI / pydantic
        pytest.param({"detail": [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}]},
                     [e("field required", "/title")], id="fastapi-body-field"),
        pytest.param({"detail": [{"type": "missing", "loc": ["body", "items", 0, "name"], "msg": "Field required",
                                  "input": {}, "url": "https://errors.pydantic.dev/2.5/v/missing"}]},
                     [e("Field required", "/items/0/name")], id="fastapi-v2-nested"),
        pytest.param({"detail": [{"loc": ["query", "limit"], "msg": "ensure this value is less than 100"}]},
                     [e("ensure this value is less than 100", parameter="limit", **{"in": "query"})], id="fastapi-query"),
        pytest.param({"detail": [{"loc": ["path", "item_id"], "msg": "value is not a valid integer"}]},
                     [e("value is not a valid integer", parameter="item_id", **{"in": "path"})], id="fastapi-path"),
        pytest.param({"detail": [{"loc": ["header", "x-token"], "msg": "field required"}]},
                     [e("field required", parameter="x-token", **{"in": "header"})], id="fastapi-header"),
        pytest.param({"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary"}]},
                     [e("Input should be a valid dictionary")], id="fastapi-whole-body"),
        pytest.param({"detail": [{"loc": ["title"], "msg": "field required"}]}, [e("field required", "/title")],
                     id="pydantic-plain-loc"),
        # RFC 7807 invalid-params
        pytest.param({"type": "https://example.net/validation-error", "title": "Your request parameters didn't validate.",
                      "invalid-params": [{"name": "age", "reason": "must be a positive integer"},
                                         {"name": "color", "reason": "must be 'green', 'red' or 'blue'"}]},
                     [e("must be a positive integer", "/age"), e("must be 'green', 'red' or 'blue'", "/color")],
                     id="rfc7807-invalid-params"),
        # Rails / Django REST framework, top level
        pytest.param({"title": ["can't be blank"], "body": ["is too short (minimum is 10 characters)"]},
                     [e("can't be blank", "/title"), e("is too short (minimum is 10 characters)", "/body")],
                     id="rails-top-level"),
        pytest.param({"non_field_errors": ["Unable to log in with provided credentials."]},
                     [e("Unable to log in with provided credentials.")], id="drf-non-field-errors"),
        pytest.param({"__all__": ["Start must be before end."], "end": ["Enter a valid date."]},
                     [e("Start must be before end."), e("Enter a valid date.", "/end")], id="django-form-all"),
        # what is not field errors
        pytest.param({"message": "Validation failed", "code": 422}, [], id="no-errors"),
        pytest.param({"title": ["too short"], "status": 422}, [], id="top-level-not-all-lists"),
        pytest.param({"title": ["too short", 3]}, [], id="top-level-list-not-all-strings"),
        pytest.param({"detail": "Not authenticated"}, [], id="detail-string"),
        pytest.param({"errors": "everything"}, [], id="errors-string"),
        pytest.param([{"field": "title", "message": "bad"}], [], id="document-not-an-object"),
        pytest.param("title: bad", [], id="document-string"),
        pytest.param({"errors": []}, [], id="errors-empty"),
        pytest.param({"errors": [{"field": "title"}]}, [], id="no-text"),
        pytest.param({"errors": [{"field": "title", "message": 5}]}, [], id="text-not-a-string"),
        pytest.param({"errors": [{"field": "title", "message": "   "}]}, [], id="text-blank"),
        pytest.param({"errors": [{"field": {"name": "title"}, "message": "bad"}]}, [], id="place-not-usable"),
        pytest.param({"errors": [{"loc": [True], "msg": "bad"}]}, [], id="loc-boolean"),
        pytest.param({"errors": [{"pointer": "/a~2b", "detail": "bad"}]}, [], id="pointer-bad-escape"),
        # a later shape is tried when the first gives nothing
        pytest.param({"errors": [], "detail": [{"loc": ["body", "x"], "msg": "bad"}]}, [e("bad", "/x")],
                     id="next-shape-when-first-empty"),
    ],
)
def test_shapes(document, expected):
    assert read(document) == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param({"errors": [{"field": "title", "message": TRACE}, {"field": "body", "message": "too short"}]},
                     [e("too short", "/body")], id="unsafe-text-drops-its-entry"),
        pytest.param({"errors": [{"field": "title", "message": "SELECT id FROM users WHERE id = 1"},
                                 {"field": "body", "message": "too short"}]},
                     [e("too short", "/body")], id="sql-drops-its-entry"),
        pytest.param({"errors": {"/srv/app/models.py": ["bad"], "body": ["too short"]}},
                     [e("too short", "/body")], id="unsafe-key-drops-its-entry"),
        pytest.param({"detail": [{"loc": ["query", "/var/www/x.php"], "msg": "bad"}]}, [], id="unsafe-parameter"),
        # Keys are scrubbed one at a time: "/app/name" is a pointer, not a server path.
        pytest.param({"errors": {"app": {"name": ["is required"]}}}, [e("is required", "/app/name")],
                     id="pointer-that-looks-like-a-path"),
        pytest.param({"errors": [{"field": "title", "message": "line one\n\t line two"}]},
                     [e("line one line two", "/title")], id="whitespace-collapsed"),
    ],
)
def test_scrubbed_entry_by_entry(document, expected):
    assert read(document) == expected


def test_caps():
    many = {"errors": [{"field": f"f{i}", "message": "bad"} for i in range(MAX_ENTRIES + 20)]}
    assert len(read(many)) == MAX_ENTRIES
    long_text = read({"errors": [{"field": "title", "message": "x" * 5000}]})
    assert len(long_text[0]["detail"]) == MAX_DETAIL and long_text[0]["detail"].endswith("…")
    deep = "a." * (MAX_POINTER // 2) + "b"  # a pointer past MAX_POINTER: the entry goes, the others stay
    assert read({"errors": [{"field": deep, "message": "bad"}, {"field": "c", "message": "ok"}]}) == [e("ok", "/c")]


def test_scan_is_bounded():
    """Past MAX_SCANNED values, nothing more is read: unusable entries count too."""
    junk = [{"field": "x"}] * MAX_SCANNED
    assert read({"errors": [*junk, {"field": "title", "message": "bad"}]}) == []
    assert read({"errors": [*junk[1:], {"field": "title", "message": "bad"}]}) == [e("bad", "/title")]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param([e("field required", "/title")], "title: field required", id="one-field"),
        pytest.param([e("too short", "/title"), e("not unique", "/title")], "title: too short", id="one-field-twice"),
        pytest.param([e("bad", parameter="q", **{"in": "query"})], "q: bad", id="parameter"),
        pytest.param([e("Passwords do not match")], "Passwords do not match", id="no-place"),
        pytest.param([e("required", "/title"), e("too long", "/items/0/name")],
                     "2 fields are invalid: title, items.0.name", id="two-fields"),
        pytest.param([e("bad", f"/f{i}") for i in range(7)], "7 fields are invalid: f0, f1, f2, f3, f4, ...",
                     id="many-fields"),
        pytest.param([e("bad", "/a~1b")], "a/b: bad", id="escaped-key"),
    ],
)
def test_summary(entries, expected):
    assert summary(entries) == expected
