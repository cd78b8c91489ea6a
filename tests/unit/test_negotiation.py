"""negotiation.choose: which error format an Accept header gets."""

from __future__ import annotations

import pytest

from proxy.core.negotiation import FIXED, HTML, JSON, PROBLEM, TEXT, choose

CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
    "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
SAFARI = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# What a browser sends for fetch() / XHR without an explicit Accept.
FETCH = "*/*"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # Browsers navigating to a page: HTML.
        pytest.param(CHROME, HTML, id="chrome"),
        pytest.param(FIREFOX, HTML, id="firefox"),
        pytest.param(SAFARI, HTML, id="safari"),
        # API clients and tools.
        pytest.param(FETCH, PROBLEM, id="curl-star-star"),
        pytest.param(None, PROBLEM, id="no-accept"),
        pytest.param("", PROBLEM, id="empty"),
        pytest.param("   ", PROBLEM, id="blank"),
        pytest.param("application/json", JSON, id="application-json"),
        pytest.param("application/problem+json", PROBLEM, id="problem-json"),
        pytest.param("application/json, application/problem+json", PROBLEM, id="json-and-problem-tie-problem-first"),
        pytest.param("application/*", PROBLEM, id="application-wildcard"),
        pytest.param("text/plain", TEXT, id="text-plain"),
        pytest.param("text/html", HTML, id="text-html"),
        pytest.param("text/*", HTML, id="text-wildcard-prefers-html"),
        pytest.param("text/plain, */*;q=0.1", TEXT, id="text-plain-over-low-wildcard"),
        # q-values order the offers.
        pytest.param("application/json;q=0.5, text/html;q=0.9", HTML, id="q-html-higher"),
        pytest.param("application/json;q=0.9, text/html;q=0.5", JSON, id="q-json-higher"),
        pytest.param("text/plain;q=0.4, application/json;q=0.3", TEXT, id="q-text-higher"),
        pytest.param("text/html;q=0.8, text/plain;q=0.9", TEXT, id="q-within-text"),
        pytest.param("*/*;q=0.9, text/plain;q=0.8", PROBLEM, id="wildcard-higher-than-named"),
        # A specific range overrides a wildcard for the type it names.
        pytest.param("text/*;q=0.9, text/html;q=0.1", TEXT, id="specific-range-lowers-html"),
        pytest.param("text/html;q=0.5, */*;q=0.5", HTML, id="named-beats-wildcard-at-equal-q"),
        # q=0 means "not acceptable".
        pytest.param("text/html;q=0, */*", PROBLEM, id="html-excluded-star-star"),
        pytest.param("application/problem+json;q=0, */*", JSON, id="problem-excluded-json-next"),
        pytest.param("application/problem+json;q=0, application/json;q=0, */*", HTML, id="all-json-excluded"),
        pytest.param("text/html;q=0", PROBLEM, id="only-excluded-falls-back"),
        pytest.param("*/*;q=0", PROBLEM, id="everything-excluded-falls-back"),
        pytest.param("text/plain;q=0.0, text/*", HTML, id="q-zero-point-zero"),
        # Malformed or out-of-range q values.
        pytest.param("text/html;q=abc, application/json;q=0.1", JSON, id="q-not-a-number-excludes"),
        pytest.param("text/html;q=, application/json;q=0.1", JSON, id="q-empty-excludes"),
        pytest.param("text/html;q=nan, application/json;q=0.1", JSON, id="q-nan-excludes"),
        pytest.param("text/html;q=inf, application/json;q=0.9", JSON, id="q-inf-excludes"),
        pytest.param("text/html;q=-1, application/json;q=0.1", JSON, id="q-negative-clamped-to-zero"),
        pytest.param("text/html;q=5, application/json;q=1", JSON, id="q-above-one-clamped-tie-prefers-json"),
        pytest.param("text/html;q", PROBLEM, id="q-without-value-excludes"),
        # Types we never produce.
        pytest.param("image/png", PROBLEM, id="unknown-type-only"),
        pytest.param("image/png, image/webp;q=0.9", PROBLEM, id="unknown-types-only"),
        pytest.param("html", PROBLEM, id="no-slash-ignored"),
        pytest.param("image/*, text/plain;q=0.1", TEXT, id="unknown-wildcard-with-low-text"),
        # Case and whitespace do not matter.
        pytest.param("TEXT/HTML", HTML, id="upper-case-type"),
        pytest.param("Text/Plain; Q=0.5, Application/JSON; q=0.4", TEXT, id="mixed-case-and-q"),
        pytest.param("text/html;Q=0, */*", PROBLEM, id="upper-case-q-zero"),
        pytest.param("  text/plain ; q=0.5 ,  application/json ; q=0.4  ", TEXT, id="spaces-around-everything"),
        pytest.param("\ttext/plain\t", TEXT, id="tabs"),
        pytest.param(",,text/plain,,", TEXT, id="empty-items"),
        # Other parameters are not the q-value.
        pytest.param("text/html;level=1;q=0.2, application/json;q=0.3", JSON, id="extra-params-before-q"),
        pytest.param("text/plain; charset=utf-8", TEXT, id="charset-param"),
    ],
)
def test_choose(accept, expected):
    assert choose(accept) == expected


def test_q_without_value_excludes_only_that_range():
    # "q" with no "=" is malformed: that range is unacceptable, the rest still count.
    assert choose("text/html;q, text/plain;q=0.1") == TEXT


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        pytest.param("json", PROBLEM, id="json-is-problem"),
        pytest.param("html", HTML, id="html"),
        pytest.param("text", TEXT, id="text"),
    ],
)
def test_fixed_formats(format, expected):
    assert FIXED[format] == expected


@pytest.mark.parametrize(
    ("choice", "kind", "media_type"),
    [
        pytest.param(PROBLEM, "json", "application/problem+json", id="problem"),
        pytest.param(JSON, "json", "application/json", id="json"),
        pytest.param(HTML, "html", "text/html", id="html"),
        pytest.param(TEXT, "text", "text/plain", id="text"),
    ],
)
def test_choices(choice, kind, media_type):
    assert (choice.kind, choice.media_type) == (kind, media_type)
