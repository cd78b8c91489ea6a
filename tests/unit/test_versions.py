"""versions: the version fields a 409 or 412 keeps without a rule."""

from __future__ import annotations

import pytest

from proxy.core.versions import MAX_TEXT, NAMES, read


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param({"error": "Document was updated by another user", "current_version": 8},
                     {"current_version": 8}, id="django-current-version"),
        pytest.param({"message": "Conflict", "currentVersion": 7}, {"currentVersion": 7}, id="camel-case-kept-as-sent"),
        pytest.param({"error": {"message": "Version conflict", "version": 12}}, {"version": 12}, id="under-error"),
        pytest.param({"version": 3, "error": {"version": 2}}, {"version": 3}, id="top-level-wins"),
        pytest.param({"version": None, "error": {"version": 2}}, {"version": 2}, id="null-top-level-falls-to-error"),
        pytest.param({"error": "conflict", "_rev": "3-917fa2381192822767f010b95b45325b"},
                     {"_rev": "3-917fa2381192822767f010b95b45325b"}, id="couchdb-rev"),
        pytest.param({"rev": 4, "revision": "r4"}, {"revision": "r4", "rev": 4}, id="rev-and-revision"),
        pytest.param({"updated_at": "2025-01-31T09:14:03Z", "updatedAt": "2025-01-31T09:14:03Z"},
                     {"updated_at": "2025-01-31T09:14:03Z", "updatedAt": "2025-01-31T09:14:03Z"}, id="updated-at"),
        pytest.param({"last_modified": 1738314843.5, "lastModified": "Fri, 31 Jan 2025 09:14:03 GMT"},
                     {"last_modified": 1738314843.5, "lastModified": "Fri, 31 Jan 2025 09:14:03 GMT"},
                     id="last-modified"),
        pytest.param({"version": True}, {"version": True}, id="boolean"),
        pytest.param({"version": 0}, {"version": 0}, id="zero"),
        # what is not kept
        pytest.param({"version": {"major": 2}}, {}, id="object"),
        pytest.param({"version": [1, 2]}, {}, id="list"),
        pytest.param({"version": None}, {}, id="null"),
        pytest.param({"version": float("nan"), "rev": float("inf")}, {}, id="not-finite"),
        pytest.param({"version": ""}, {}, id="empty-string"),
        pytest.param({"version": "x" * (MAX_TEXT + 1)}, {}, id="string-too-long"),
        pytest.param({"version": "v1\nv2"}, {}, id="string-not-printable"),
        pytest.param({"version": "/srv/app/versions.py"}, {}, id="unsafe-string"),
        pytest.param({"Version": 3, "current-version": 4, "etag": "x"}, {}, id="other-names"),
        pytest.param({"error": ["version", 3]}, {}, id="error-not-an-object"),
        pytest.param([{"version": 3}], {}, id="document-not-an-object"),
    ],
)
def test_read(document, expected):
    assert read(document) == expected


def test_string_at_the_cap_is_kept():
    assert read({"version": "x" * MAX_TEXT}) == {"version": "x" * MAX_TEXT}


def test_every_name():
    assert read({name: index for index, name in enumerate(NAMES)}) == {name: index for index, name in enumerate(NAMES)}
