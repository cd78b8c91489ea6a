"""language: which of the built-in languages answers an Accept-Language header."""

from __future__ import annotations

import pytest

from proxy.core.language import LANGUAGES, negotiate, parse, supported


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        # No preference: the default (the brand's lang).
        pytest.param(None, "en", "en", id="absent"),
        pytest.param("", "de", "de", id="empty"),
        pytest.param("   ", "ja", "ja", id="blank"),
        pytest.param("de", "en", "de", id="exact"),
        pytest.param("DE", "en", "de", id="case-insensitive"),
        # Prefixes, both ways: a regional range gets its language, a bare one its script variant.
        pytest.param("de-CH", "en", "de", id="region-to-language"),
        pytest.param("pt-BR", "en", "pt", id="pt-BR"),
        pytest.param("pt-PT", "en", "pt", id="pt-PT"),
        pytest.param("en-GB", "de", "en", id="en-GB"),
        pytest.param("es-419", "en", "es", id="numeric-region"),
        pytest.param("zh", "en", "zh-Hans", id="zh-bare"),
        pytest.param("zh-Hans", "en", "zh-Hans", id="zh-Hans"),
        pytest.param("zh-Hans-CN", "en", "zh-Hans", id="zh-Hans-CN"),
        pytest.param("zh-CN", "en", "zh-Hans", id="zh-CN-implies-simplified"),
        pytest.param("zh-SG", "en", "zh-Hans", id="zh-SG-implies-simplified"),
        # Traditional Chinese is not served by the Simplified texts: next range, or the default.
        pytest.param("zh-TW", "en", "en", id="zh-TW-not-simplified"),
        pytest.param("zh-Hant", "fr", "fr", id="zh-Hant-not-simplified"),
        pytest.param("zh-TW,zh;q=0.9,en;q=0.8", "en", "zh-Hans", id="chrome-taiwan-adds-zh"),
        # q-values: highest first; ties in the order written.
        pytest.param("fr;q=0.5, de;q=0.9", "en", "de", id="q-order"),
        pytest.param("fr, de", "en", "fr", id="tie-first-written"),
        pytest.param("fr;q=0.5, de;q=0.5", "en", "fr", id="equal-q-first-written"),
        pytest.param("it, ja;q=0.2", "en", "ja", id="unsupported-skipped"),
        pytest.param("de-CH, de;q=0.9, en;q=0.8", "en", "de", id="browser-swiss"),
        pytest.param("ja;q=1.000, en;q=0.999", "en", "ja", id="three-decimals"),
        # Unsupported only: the default, not a 406.
        pytest.param("it, nl;q=0.5", "en", "en", id="unsupported-default-en"),
        pytest.param("ko-KR", "de", "de", id="unsupported-default-de"),
        # Wildcards: the default, unless refused.
        pytest.param("*", "es", "es", id="wildcard-default"),
        pytest.param("it, *;q=0.1", "pt", "pt", id="wildcard-after-unsupported"),
        pytest.param("*;q=0.5, fr", "en", "fr", id="named-beats-wildcard"),
        pytest.param("en;q=0, *", "en", "de", id="wildcard-but-default-refused"),
        # q=0 refuses: a range refuses the languages it is a prefix of.
        pytest.param("de;q=0, fr;q=0.1", "de", "fr", id="refused"),
        pytest.param("zh;q=0, *", "zh-Hans", "en", id="refused-zh-covers-zh-Hans"),
        pytest.param("de-CH;q=0, de", "en", "de", id="refused-region-keeps-language"),
        pytest.param("en;q=0", "en", "en", id="all-refused-default-anyway"),
        # Malformed items are skipped, the rest still count.
        pytest.param("fr;q=2, de", "en", "de", id="q-above-one"),
        pytest.param("fr;q=-1, de", "en", "de", id="q-negative"),
        pytest.param("fr;q=abc, de", "en", "de", id="q-not-a-number"),
        pytest.param("fr;q=0.1234, de;q=0.1", "en", "de", id="q-four-decimals"),
        pytest.param("fr;q=nan, de", "en", "de", id="q-nan"),
        pytest.param("fr;level=1, ja", "en", "ja", id="unknown-parameter"),
        pytest.param("d_e, ja", "en", "ja", id="underscore"),
        pytest.param("toolongsubtag, ja", "en", "ja", id="primary-over-8"),
        pytest.param("de-<script>, ja", "en", "ja", id="markup"),
        pytest.param(",,, de ,", "en", "de", id="empty-elements"),
        pytest.param("ĸ, fr", "en", "fr", id="non-ascii"),
    ],
)
def test_negotiate(header, default, expected):
    assert negotiate(header, default) == expected


def test_only_the_first_ranges_are_read():
    """A hostile header of thousands of ranges costs a bounded parse: past the first 32, nothing counts."""
    header = ", ".join(["it"] * 40 + ["de"])
    assert negotiate(header, "en") == "en"
    assert negotiate(", ".join(["it"] * 31 + ["de"]), "en") == "de"
    assert len(parse("en," * 100_000)) == 32


def test_parse_keeps_order_and_weights():
    assert parse("de-CH, de;q=0.9, *;q=0.1") == [("de-ch", 1.0), ("de", 0.9), ("*", 0.1)]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en", "en"), ("de-CH", "de"), ("ZH-HANS", "zh-Hans"), ("zh-CN", "zh-Hans"), ("pt-BR", "pt"),
     ("zh-TW", None), ("it", None), ("", None)],
)
def test_supported(tag, expected):
    assert supported(tag) == expected


def test_every_language_is_its_own_answer():
    for language in LANGUAGES:
        assert negotiate(language, "en" if language != "en" else "de") == language
