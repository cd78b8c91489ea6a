"""The `concurrency` block, through loader.from_text: values, inheritance from `defaults`, problems."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from proxy.config.loader import ConfigError, from_text
from proxy.core.guard_settings import Concurrency, ETagSource, ResourceKey


def config(route: str = "", defaults: str = "") -> str:
    text = "upstreams: {legacy: 'http://127.0.0.1:9000'}\n"
    if defaults:
        text += "defaults:\n" + indent(dedent(defaults).strip("\n") + "\n", "  ")
    text += "routes:\n  - name: docs\n    match: {path_prefix: /}\n    upstream: legacy\n"
    return text + indent(dedent(route), "    ")


def guard(route: str = "", defaults: str = "") -> Concurrency | None:
    return from_text(config(route, defaults)).routes[0].concurrency


def problems(route: str = "", defaults: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_text(config(route, defaults))
    return caught.value.problems


def test_off_unless_asked():
    assert guard() is None


@pytest.mark.parametrize("value", ["{}", "true", "on"])
def test_an_empty_block_or_true_turns_it_on_with_the_defaults(value):
    assert guard(f"concurrency: {value}") == Concurrency()


def test_every_key():
    concurrency = guard("""\
        concurrency:
          etag: pointer:/meta/version
          require_if_match: false
          methods: [put, PATCH, POST]
          on_mismatch: 409
          max_body: 64KiB
          lock: redis://127.0.0.1:6379/2
          lock_timeout: 250ms
          lock_lease: 30s
          on_lock_unavailable: forward
          key: 'regex:^/documents/(\\d+)'
          max_waiters: 0
          fencing_header: null
        """)
    assert concurrency is not None
    assert concurrency.etag == ETagSource("pointer", "/meta/version")
    assert concurrency.require_if_match is False
    assert concurrency.methods == {"PUT", "PATCH", "POST"}
    assert (concurrency.on_mismatch, concurrency.max_body) == (409, 64 * 1024)
    assert (concurrency.lock, concurrency.lock_timeout, concurrency.lock_lease) == ("redis://127.0.0.1:6379/2", 0.25, 30.0)
    assert concurrency.on_lock_unavailable == "forward"
    assert concurrency.key.kind == "regex" and concurrency.key.pattern.pattern == r"^/documents/(\d+)"
    assert (concurrency.max_waiters, concurrency.fencing_header) == (0, None)


@pytest.mark.parametrize("etag, source", [
    ("body", ETagSource()), ("header:X-Version", ETagSource("header", "X-Version")),
    ("pointer:/version", ETagSource("pointer", "/version")),
])
def test_etag_sources(etag, source):
    assert guard(f"concurrency: {{etag: '{etag}'}}").etag == source


@pytest.mark.parametrize("key, expected", [("path", ResourceKey()), ("path_and_query", ResourceKey("path_and_query"))])
def test_keys(key, expected):
    assert guard(f"concurrency: {{key: {key}}}").key == expected


def test_a_route_block_applies_key_by_key_over_the_defaults():
    defaults = "concurrency: {lock: 'redis://cache:6379/0', lock_timeout: 2s, on_mismatch: 409}"
    assert guard(defaults=defaults) == Concurrency(lock="redis://cache:6379/0", lock_timeout=2.0, on_mismatch=409)
    route = guard("concurrency: {lock_timeout: 1s}", defaults)
    assert (route.lock, route.lock_timeout, route.on_mismatch) == ("redis://cache:6379/0", 1.0, 409)
    assert guard("concurrency: true", defaults).lock == "redis://cache:6379/0"


@pytest.mark.parametrize("value", ["false", "off", "null"])
def test_a_route_turns_off_what_defaults_turn_on(value):
    assert guard(f"concurrency: {value}", "concurrency: {}") is None


@pytest.mark.parametrize("block, problem", [
    ("{etag: version}", 'routes[0].concurrency.etag: "version" is not body, pointer:/JSON/pointer or header:NAME'),
    ("{etag: 'pointer:version'}", 'routes[0].concurrency.etag: "pointer:version" is not body, pointer:/JSON/pointer or header:NAME'),
    ("{etag: 'header:'}", 'routes[0].concurrency.etag: "header:" is not body, pointer:/JSON/pointer or header:NAME'),
    ("{require_if_match: 'yes'}", 'routes[0].concurrency.require_if_match: "yes" must be true or false'),
    ("{methods: []}", "routes[0].concurrency.methods: [] must be a non-empty list of methods (PUT, PATCH, DELETE, ...)"),
    ("{methods: [GET]}", 'routes[0].concurrency.methods: "GET" is a read: reads get ETags, writes are checked (list PUT, PATCH, DELETE, ...)'),
    ("{methods: ['P T']}", 'routes[0].concurrency.methods: "P T" is not an HTTP method'),
    ("{on_mismatch: 400}", "routes[0].concurrency.on_mismatch: 400 must be 412 or 409"),
    ("{max_body: lots}", 'routes[0].concurrency.max_body: "lots" is not a size'),
    ("{lock: memcached://x}", 'routes[0].concurrency.lock: "memcached://x" is not local or redis://HOST[:PORT][/DB] (rediss:// for TLS)'),
    ("{lock: 'redis://:hunter2@cache/zero'}", 'routes[0].concurrency.lock: "redis://:***@cache/zero" is not local or redis://HOST[:PORT][/DB] (rediss:// for TLS)'),
    ("{lock_timeout: 0}", "routes[0].concurrency.lock_timeout: 0 must be more than 0"),
    ("{lock_lease: soon}", 'routes[0].concurrency.lock_lease: "soon" is not a duration'),
    ("{on_lock_unavailable: maybe}", 'routes[0].concurrency.on_lock_unavailable: "maybe" must be fail or forward'),
    ("{key: id}", 'routes[0].concurrency.key: "id" is not path, path_and_query or regex:PATTERN'),
    ("{key: 'regex:('}", 'routes[0].concurrency.key: "(" is not a regular expression (missing ), unterminated subpattern at position 0)'),
    ("{max_waiters: -1}", "routes[0].concurrency.max_waiters: -1 is not a whole number"),
    ("{fencing_header: 'X Token'}", 'routes[0].concurrency.fencing_header: "X Token" is not a header name (or null to send none)'),
    ("[PUT]", 'routes[0].concurrency: ["PUT"] must be a mapping'),
    ("{lock_ttl: 5s}", "routes[0].concurrency.lock_ttl: unknown key (known keys: etag, fencing_header, key, lock, "
                       "lock_lease, lock_timeout, max_body, max_waiters, methods, on_lock_unavailable, on_mismatch, "
                       "require_if_match)"),
])
def test_problems_name_the_key_and_quote_the_value(block, problem):
    assert problems(f"concurrency: {block}") == [problem]


def test_a_bad_default_is_reported_once_under_defaults():
    assert problems(defaults="concurrency: {on_mismatch: 400}") == [
        "defaults.concurrency.on_mismatch: 400 must be 412 or 409"]
