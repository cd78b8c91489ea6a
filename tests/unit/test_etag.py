"""Entity tags and preconditions (RFC 9110 §8.8.3, §13.1): parsing, comparison, evaluation, keys."""

from __future__ import annotations

import re

import pytest

from proxy.core.etag import Condition, EntityTag, from_body, from_version, parse_condition, parse_etag
from proxy.core.preconditions import (
    Current, Verdict, etag_from_body, etag_from_header, evaluate_write, not_modified, resource_key, upstream_etag,
)
from proxy.core.guard_settings import ETagSource, ResourceKey

A, A_WEAK, B = EntityTag("a"), EntityTag("a", weak=True), EntityTag("b")


@pytest.mark.parametrize("values, expected", [
    pytest.param(['"a"'], Condition(tags=(A,)), id="one"),
    pytest.param(['W/"a"'], Condition(tags=(A_WEAK,)), id="weak"),
    pytest.param(['"a", W/"a" ,"b"'], Condition(tags=(A, A_WEAK, B)), id="list"),
    pytest.param(['"a"', '"b"'], Condition(tags=(A, B)), id="two header lines"),
    pytest.param([', "a",, "b" ,'], Condition(tags=(A, B)), id="empty list elements"),
    pytest.param(['"a,b"'], Condition(tags=(EntityTag("a,b"),)), id="comma inside a tag"),
    pytest.param(['""'], Condition(tags=(EntityTag(""),)), id="empty opaque tag"),
    pytest.param(["*"], Condition(any=True), id="star"),
    pytest.param([" * "], Condition(any=True), id="star with spaces"),
    pytest.param(['"caf\u00e9"'], Condition(tags=(EntityTag("caf\u00e9"),)), id="obs-text"),
], )
def test_conditions_parse(values, expected):
    assert parse_condition(values) == expected


@pytest.mark.parametrize("values", [
    pytest.param(["a"], id="unquoted"),
    pytest.param(['"a'], id="unterminated"),
    pytest.param(['"a" "b"'], id="no comma"),
    pytest.param(['"a""b"'], id="no separator"),
    pytest.param(['w/"a"'], id="lower-case weak prefix"),
    pytest.param(['W/ "a"'], id="space after W/"),
    pytest.param(['"a b"'], id="space inside"),
    pytest.param(['"a\x7f"'], id="DEL inside"),
    pytest.param(["*", '"a"'], id="star with a tag"),
    pytest.param(["**"], id="double star"),
    pytest.param([""], id="empty"),
    pytest.param([" , "], id="only commas"),
    pytest.param([", ".join(['"x"'] * 65)], id="more than 64 tags"),
])
def test_malformed_conditions_are_none(values):
    assert parse_condition(values) is None


def test_a_single_etag_parses_and_prints_back():
    assert parse_etag('W/"v7"') == EntityTag("v7", weak=True)
    assert str(EntityTag("v7", weak=True)) == 'W/"v7"' and str(EntityTag("v7")) == '"v7"'
    assert parse_etag('"a", "b"') is None and parse_etag("*") is None and parse_etag(None) is None


def test_derived_etags_are_strong_and_change_with_the_bytes():
    first, second = from_body(b'{"v": 1}'), from_body(b'{"v": 2}')
    assert not first.weak and first != second and first == from_body(b'{"v": 1}')
    assert parse_etag(str(first)) == first  # what the client sends back parses to the same tag


@pytest.mark.parametrize("value, shown", [
    pytest.param(7, '"7"', id="integer"),
    pytest.param("v7", '"v7"', id="short string"),
    pytest.param(2**70, '"1180591620717411303424"', id="big integer"),
], )
def test_versions_are_shown_as_they_are(value, shown):
    assert str(from_version(value)) == shown


@pytest.mark.parametrize("value", [
    pytest.param('has "quotes"', id="quotes"), pytest.param("a b", id="space"), pytest.param("x" * 65, id="long"),
    pytest.param(1.5, id="float"), pytest.param({"major": 1}, id="object"), pytest.param([1, 2], id="list"),
])
def test_odd_versions_are_hashed_into_a_valid_tag(value):
    tag = from_version(value)
    assert tag is not None and tag.opaque.startswith("v-") and parse_etag(str(tag)) == tag


def test_object_versions_hash_canonically():
    assert from_version({"a": 1, "b": 2}) == from_version({"b": 2, "a": 1})


@pytest.mark.parametrize("value", [None, True, False, ""], ids=["null", "true", "false", "empty"])
def test_no_version_no_etag(value):
    assert from_version(value) is None


EXISTS = Current(exists=True, etag=A)
GONE = Current(exists=False)
UNVERIFIABLE = Current(exists=True, etag=None, why_none="too large")


@pytest.mark.parametrize("if_match, if_none_match, current, verdict", [
    pytest.param('"a"', None, EXISTS, Verdict.PROCEED, id="If-Match matches"),
    pytest.param('"b", "a"', None, EXISTS, Verdict.PROCEED, id="If-Match lists it"),
    pytest.param('"b"', None, EXISTS, Verdict.CHANGED, id="If-Match stale"),
    pytest.param('W/"a"', None, EXISTS, Verdict.CHANGED, id="If-Match weak never matches"),
    pytest.param('"a"', None, Current(exists=True, etag=A_WEAK), Verdict.CHANGED, id="current weak never matches"),
    pytest.param('"a"', None, GONE, Verdict.GONE, id="If-Match on a missing resource"),
    pytest.param("*", None, EXISTS, Verdict.PROCEED, id="If-Match star, exists"),
    pytest.param("*", None, GONE, Verdict.GONE, id="If-Match star, missing"),
    pytest.param("*", None, UNVERIFIABLE, Verdict.PROCEED, id="If-Match star needs no ETag"),
    pytest.param('"a"', None, UNVERIFIABLE, Verdict.UNVERIFIABLE, id="If-Match, ETag unknown"),
    pytest.param(None, "*", GONE, Verdict.PROCEED, id="create only, missing"),
    pytest.param(None, "*", EXISTS, Verdict.EXISTS, id="create only, exists"),
    pytest.param(None, "*", UNVERIFIABLE, Verdict.EXISTS, id="create only, exists without ETag"),
    pytest.param(None, 'W/"a"', EXISTS, Verdict.EXISTS, id="If-None-Match matches weakly"),
    pytest.param(None, '"b"', EXISTS, Verdict.PROCEED, id="If-None-Match other tag"),
    pytest.param(None, '"b"', UNVERIFIABLE, Verdict.UNVERIFIABLE, id="If-None-Match, ETag unknown"),
    pytest.param('"a"', '"b"', EXISTS, Verdict.PROCEED, id="both hold"),
    pytest.param('"b"', "*", GONE, Verdict.GONE, id="If-Match is evaluated first"),
    pytest.param(None, None, EXISTS, Verdict.PROCEED, id="unconditional"),
])
def test_write_preconditions(if_match, if_none_match, current, verdict):
    condition = (lambda text: None if text is None else parse_condition([text]))
    assert evaluate_write(condition(if_match), condition(if_none_match), current) is verdict


@pytest.mark.parametrize("if_none_match, etag, expected", [
    pytest.param('"a"', A, True, id="same"),
    pytest.param('W/"a"', A, True, id="weak comparison"),
    pytest.param('"a"', A_WEAK, True, id="weak current"),
    pytest.param('"b", "a"', A, True, id="in a list"),
    pytest.param("*", A, True, id="star"),
    pytest.param('"b"', A, False, id="other"),
    pytest.param(None, A, False, id="absent"),
])
def test_reads_are_not_modified_when_if_none_match_names_the_etag(if_none_match, etag, expected):
    condition = None if if_none_match is None else parse_condition([if_none_match])
    assert not_modified(condition, etag) is expected


def test_the_upstreams_own_etag_counts_only_when_strong():
    assert upstream_etag({"ETag": '"u1"'}) == EntityTag("u1")
    assert upstream_etag({"ETag": 'W/"u1"'}) is None
    assert upstream_etag({"ETag": "u1"}) is None and upstream_etag({}) is None


def test_etags_from_each_source():
    assert etag_from_body(ETagSource(), b"x") == from_body(b"x")
    pointer = ETagSource("pointer", "/meta/version")
    assert etag_from_body(pointer, b"", {"meta": {"version": 12}}) == EntityTag("12")
    assert etag_from_body(pointer, b"", {"meta": {}}) is None
    header = ETagSource("header", "X-Version")
    assert etag_from_header(header, {"X-Version": "12"}) == EntityTag("12")
    assert etag_from_header(header, {}) is None


@pytest.mark.parametrize("key, target, expected", [
    pytest.param(ResourceKey(), "/documents/42", "/documents/42", id="path"),
    pytest.param(ResourceKey(), "/documents/42?fields=x", "/documents/42", id="path ignores the query"),
    pytest.param(ResourceKey(), "/documents/%34%32", "/documents/42", id="path decoded"),
    pytest.param(ResourceKey(), "/documents/x/../42", "/documents/42", id="dot segments"),
    pytest.param(ResourceKey("path_and_query"), "/documents/42?fields=x", "/documents/42?fields=x", id="path and query"),
    pytest.param(ResourceKey("regex", re.compile(r"^/documents/(\d+)")), "/documents/42/comments", "42", id="group"),
    pytest.param(ResourceKey("regex", re.compile(r"^/documents/\d+")), "/documents/42/x", "/documents/42", id="match"),
    pytest.param(ResourceKey("regex", re.compile(r"^/documents/(\d+)")), "/other/1", "/other/1", id="no match: path"),
    pytest.param(ResourceKey("regex", re.compile(r"^/d/(\d+)?")), "/d/", "/d/", id="group unmatched: whole"),
])
def test_resource_keys(key, target, expected):
    assert resource_key(key, target) == expected
