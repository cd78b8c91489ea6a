"""status: status sets written as config, reason phrases."""

from __future__ import annotations

import pytest

from proxy.core.status import StatusSet, is_status, reason


@pytest.mark.parametrize(
    ("items", "inside", "outside"),
    [
        pytest.param([404], [404], [403, 405], id="int"),
        pytest.param(["404"], [404], [403, 405], id="digit-string"),
        pytest.param([" 404 "], [404], [403, 405], id="digit-string-padded"),
        pytest.param([100, 599], [100, 599], [101, 598], id="bounds"),
        pytest.param(["4xx"], [400, 404, 499], [399, 500], id="class"),
        pytest.param(["1xx"], [100, 199], [200], id="class-1xx"),
        pytest.param(["5xx"], [500, 599], [499, 600], id="class-5xx"),
        pytest.param(["500-504"], [500, 502, 504], [499, 505], id="range"),
        pytest.param(["500 - 504"], [500, 504], [505], id="range-spaced"),
        pytest.param(["503-503"], [503], [502, 504], id="range-single"),
        pytest.param([409, "5xx", "420-429"], [409, 420, 429, 503], [404, 410, 430], id="docstring-example"),
        pytest.param([], [], [100, 404, 500], id="empty"),
    ],
)
def test_parse_membership(items: list[object], inside: list[int], outside: list[int]) -> None:
    statuses = StatusSet.parse(items)
    assert all(code in statuses for code in inside), inside
    assert not any(code in statuses for code in outside), outside


@pytest.mark.parametrize(
    ("items", "ranges"),
    [
        pytest.param([404, "4xx", "500-504"], ((404, 404), (400, 499), (500, 504)), id="each-item-one-range"),
        pytest.param(["2xx"], ((200, 299),), id="class-bounds"),
    ],
)
def test_parse_ranges(items: list[object], ranges: tuple[tuple[int, int], ...]) -> None:
    assert StatusSet.parse(items).ranges == ranges


@pytest.mark.parametrize(
    "item",
    [
        pytest.param("6xx", id="class-6xx"),
        pytest.param("0xx", id="class-0xx"),
        pytest.param("4XX", id="class-upper-case"),
        pytest.param("4x", id="class-short"),
        pytest.param("600", id="string-600"),
        pytest.param(600, id="int-600"),
        pytest.param(99, id="int-99"),
        pytest.param("099", id="string-099"),
        pytest.param(0, id="zero"),
        pytest.param(-404, id="negative"),
        pytest.param("abc", id="letters"),
        pytest.param("", id="empty-string"),
        pytest.param("504-500", id="range-reversed"),
        pytest.param("500-600", id="range-past-599"),
        pytest.param("99-200", id="range-short-low"),
        pytest.param("500-", id="range-open"),
        pytest.param("404,500", id="comma-list"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param(404.0, id="float"),
        pytest.param(None, id="none"),
        pytest.param([404], id="nested-list"),
    ],
)
def test_parse_rejects(item: object) -> None:
    with pytest.raises(ValueError) as info:
        StatusSet.parse([404, item])
    assert info.value.args == (item,)


def test_default_set_is_empty() -> None:
    assert 200 not in StatusSet()
    assert 500 not in StatusSet()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(99, False, id="99"),
        pytest.param(100, True, id="100"),
        pytest.param(599, True, id="599"),
        pytest.param(600, False, id="600"),
    ],
)
def test_is_status(code: int, expected: bool) -> None:
    assert is_status(code) is expected


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        pytest.param(200, "OK", id="200"),
        pytest.param(404, "Not Found", id="404"),
        pytest.param(409, "Conflict", id="409"),
        pytest.param(429, "Too Many Requests", id="429"),
        pytest.param(502, "Bad Gateway", id="502"),
        pytest.param(504, "Gateway Timeout", id="504"),
        pytest.param(499, "Client Error", id="unknown-4xx"),
        pytest.param(460, "Client Error", id="unknown-4xx-460"),
        pytest.param(599, "Server Error", id="unknown-5xx"),
        pytest.param(520, "Server Error", id="unknown-5xx-520"),
        pytest.param(299, "Unknown Status", id="unknown-2xx"),
        pytest.param(199, "Unknown Status", id="unknown-1xx"),
    ],
)
def test_reason(code: int, phrase: str) -> None:
    assert reason(code) == phrase
