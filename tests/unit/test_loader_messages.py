"""Config: `messages` (texts replaced per language) and `brand.lang`, checked at load time."""

from __future__ import annotations

import pytest

from proxy.config.loader import ConfigError, from_mapping

BASE = {
    "listen": "127.0.0.1:8080",
    "upstreams": {"legacy": "http://127.0.0.1:9000"},
    "routes": [{"name": "site", "match": {"path_prefix": "/"}, "upstream": "legacy"}],
}


def load(**top):
    return from_mapping({**BASE, **top}, "test.yaml")


def problems(**top) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(**top)
    return caught.value.problems


def test_messages_load_by_language_and_id():
    settings = load(messages={"de": {"409.title": "Bearbeitungskonflikt", "429.retry_at": "Nochmal %(when)s (100%%)."},
                              "ZH-hans": {"page.brand": "文档"}, "en": None})
    assert dict(settings.messages["de"]) == {"409.title": "Bearbeitungskonflikt",
                                             "429.retry_at": "Nochmal %(when)s (100%%)."}
    assert dict(settings.messages["zh-Hans"]) == {"page.brand": "文档"}
    assert dict(settings.messages["en"]) == {}


def test_no_messages_by_default():
    assert dict(load().messages) == {}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param({"it": {"409.title": "Conflitto"}},
                     'messages.it: "it" is not a language of the built-in texts (de, en, es, fr, ja, pt, zh-Hans)',
                     id="unknown-language"),
        pytest.param({"zh-TW": {}},
                     'messages.zh-TW: "zh-TW" is not a language of the built-in texts (de, en, es, fr, ja, pt, zh-Hans)',
                     id="regional-language"),
        pytest.param({"de": {"409.detial": "x"}},
                     'messages.de.409.detial: "409.detial" is not a message id (did you mean 409.detail?)',
                     id="unknown-id-close"),
        pytest.param({"de": {"footer": "x"}}, 'messages.de.footer: "footer" is not a message id', id="unknown-id"),
        pytest.param({"de": {"409.title": ""}},
                     'messages.de.409.title: "" is empty (leave the id out to keep the built-in text)', id="empty"),
        pytest.param({"de": {"429.retry_at": "Nochmal %(wann)s"}},
                     'messages.de.429.retry_at: "Nochmal %(wann)s" uses %(wann)s, which this text does not have '
                     '(it has: %(when)s)', id="wrong-placeholder"),
        pytest.param({"fr": {"409.title": "100% conflit"}},
                     'messages.fr.409.title: "100% conflit" has a % that is no placeholder (write %% for a percent '
                     'sign)', id="lone-percent"),
        pytest.param({"de": {"409.title": ["a"]}}, 'messages.de.409.title: ["a"] must be a string', id="not-a-string"),
        pytest.param({"de": "Konflikt"}, 'messages.de: "Konflikt" must be a mapping', id="language-not-a-mapping"),
        pytest.param(["de"], 'messages: ["de"] must be a mapping', id="not-a-mapping"),
        pytest.param({"de": {}, "DE": {}}, 'messages.DE: "DE" is de again (written another way above)',
                     id="language-twice"),
    ],
)
def test_bad_messages_name_path_and_value(messages, expected):
    assert problems(messages=messages) == [expected]


@pytest.mark.parametrize("lang", ["en", "de", "de-CH", "pt-BR", "zh-CN", "zh-Hans", "ja"])
def test_brand_lang_of_a_built_in_language(lang):
    assert load(brand={"lang": lang}).brand["lang"] == lang


@pytest.mark.parametrize("lang", ["it", "zh-TW"])
def test_brand_lang_the_texts_do_not_have(lang):
    assert problems(brand={"lang": lang}) == [
        f'brand.lang: "{lang}" is not a language of the built-in texts (de, en, es, fr, ja, pt, zh-Hans)']
