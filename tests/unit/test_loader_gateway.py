"""The `cors` and `maintenance` blocks, through loader.from_text: values, inheritance, problems."""

from __future__ import annotations

import ipaddress
from textwrap import dedent, indent

import pytest

from proxy.config.loader import ConfigError, from_text
from proxy.core.settings import Cors, Maintenance


def config(route: str = "", defaults: str = "") -> str:
    text = "upstreams: {legacy: 'http://127.0.0.1:9000'}\n"
    if defaults:
        text += "defaults:\n" + indent(dedent(defaults).strip("\n") + "\n", "  ")
    text += "routes:\n  - name: api\n    match: {path_prefix: /api}\n    upstream: legacy\n"
    text += indent(dedent(route), "    ")
    return text + "\n  - name: site\n    match: {path_prefix: /}\n    upstream: legacy\n"


def problems(route: str = "", defaults: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_text(config(route, defaults))
    return caught.value.problems


def test_off_unless_asked():
    settings = from_text(config())
    assert [route.cors for route in settings.routes] == [None, None] and settings.cors is None
    assert [route.maintenance for route in settings.routes] == [Maintenance(), Maintenance()]


def test_every_cors_key():
    settings = from_text(config("""\
        cors:
          allow_origins: ["HTTPS://App.Example.com:443", "http://localhost:5173", "https://*.example.org"]
          allow_credentials: true
          expose_headers: [X-Trace]
          preflight: proxy
          max_age: 2h
          allow_methods: [get, PUT]
          allow_headers: [Content-Type, X-CSRF-Token]
        """))
    assert settings.routes[0].cors == Cors(
        allow_origins=("https://app.example.com", "http://localhost:5173", "https://*.example.org"),
        allow_credentials=True, expose_headers=("X-Trace",), preflight="proxy", max_age=7200.0,
        allow_methods=("GET", "PUT"), allow_headers=("Content-Type", "X-CSRF-Token"))


def test_cors_in_defaults_is_inherited_key_by_key_and_turned_off_by_null():
    settings = from_text(dedent("""\
        upstreams: {legacy: 'http://127.0.0.1:9000'}
        defaults:
          cors: {allow_origins: ["https://app.example.com"], allow_headers: [X-A]}
        routes:
          - {name: api, match: {path_prefix: /api}, upstream: legacy, cors: {preflight: proxy, allow_headers: null}}
          - {name: site, match: {path_prefix: /}, upstream: legacy, cors: null}
        """))
    api, site = settings.routes
    assert api.cors == Cors(allow_origins=("https://app.example.com",), preflight="proxy", allow_headers=None)
    assert site.cors is None
    assert settings.cors == Cors(allow_origins=("https://app.example.com",), allow_headers=("X-A",)), \
        "the defaults' block answers requests no route matches"


def test_every_maintenance_key_and_inheritance():
    settings = from_text(config("maintenance: {enabled: true, message: '  Back at 14:00  '}", defaults="""\
        maintenance:
          retry_after: 1m30s
          allow: [10.0.0.0/8, "2001:db8::/32"]
          file: /etc/errorproxy/maintenance
        """))
    api, site = settings.routes
    allow = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert api.maintenance == Maintenance(enabled=True, retry_after=90, message="Back at 14:00", allow=allow,
                                          file="/etc/errorproxy/maintenance")
    assert site.maintenance == Maintenance(retry_after=90, allow=allow, file="/etc/errorproxy/maintenance")


@pytest.mark.parametrize("value, enabled", [("true", True), ("false", False)])
def test_maintenance_true_or_false_is_enabled(value, enabled):
    assert from_text(config(f"maintenance: {value}")).routes[0].maintenance == Maintenance(enabled=enabled)


def test_a_fraction_of_a_second_rounds_up_in_retry_after():
    assert from_text(config("maintenance: {retry_after: 1500ms}")).routes[0].maintenance.retry_after == 2


@pytest.mark.parametrize(
    "route, expected",
    [
        pytest.param("cors: {allow_credentials: true}",
                     ['routes[0].cors.allow_origins: missing: the origins whose pages may read this route\'s errors '
                      '(or ["*"])'], id="origins-required"),
        pytest.param("cors: {allow_origins: []}",
                     ['routes[0].cors.allow_origins: [] must be a non-empty list of origins '
                      '(https://app.example.com) or ["*"]'], id="origins-empty"),
        pytest.param("cors: {allow_origins: ['https://app.example.com/']}",
                     ['routes[0].cors.allow_origins[0]: "https://app.example.com/" is not an origin '
                      '(scheme://host[:port], no path: https://app.example.com)'], id="trailing-slash"),
        pytest.param("cors: {allow_origins: [app.example.com, 'ftp://a.test', 7]}",
                     ['routes[0].cors.allow_origins[0]: "app.example.com" is not an origin (scheme://host[:port], '
                      'no path)',
                      'routes[0].cors.allow_origins[1]: "ftp://a.test" is not an origin (scheme://host[:port], '
                      'no path)',
                      'routes[0].cors.allow_origins[2]: 7 is not an origin (scheme://host[:port], no path)'],
                     id="not-origins"),
        pytest.param("cors: {allow_origins: ['*'], allow_credentials: true}",
                     ['routes[0].cors.allow_origins: "*" cannot be used with allow_credentials: true: list the '
                      'origins (browsers refuse credentials with a wildcard, and echoing any origin would let every '
                      'site read them)'], id="star-with-credentials"),
        pytest.param("cors: {allow_origins: ['*'], preflight: browser, max_age: soon, allow_methods: [GET, 'A B'], "
                     "expose_headers: X-A, allow_credentials: 'yes', colour: red}",
                     ['routes[0].cors.colour: unknown key (known keys: allow_credentials, allow_headers, '
                      'allow_methods, allow_origins, expose_headers, max_age, preflight)',
                      'routes[0].cors.allow_credentials: "yes" must be true or false',
                      'routes[0].cors.expose_headers: "X-A" must be a list of header names',
                      'routes[0].cors.allow_methods[1]: "A B" is not an HTTP method',
                      'routes[0].cors.preflight: "browser" must be upstream or proxy',
                      'routes[0].cors.max_age: "soon" is not a duration'], id="each-key"),
        pytest.param("cors: [https://a.test]", ['routes[0].cors: ["https://a.test"] must be a mapping'],
                     id="not-a-mapping"),
        pytest.param("maintenance: {enabled: 1, retry_after: -1s, message: '', allow: 10.0.0.0/8, file: maint}",
                     ['routes[0].maintenance.enabled: 1 must be true or false',
                      'routes[0].maintenance.retry_after: "-1s" is not a duration',
                      'routes[0].maintenance.message: "" must be a non-empty string of at most 1000 characters',
                      'routes[0].maintenance.allow: "10.0.0.0/8" must be a list of addresses or CIDR ranges',
                      'routes[0].maintenance.file: "maint" must be an absolute path (/etc/errorproxy/maintenance), '
                      'or null'], id="maintenance-each-key"),
        pytest.param("maintenance: {allow: [10.0.0.0/33], switch: on}",
                     ['routes[0].maintenance.switch: unknown key (known keys: allow, enabled, file, message, '
                      'retry_after)',
                      'routes[0].maintenance.allow[0]: "10.0.0.0/33" is not an IP address or CIDR range'],
                     id="maintenance-unknown-and-bad-cidr"),
        pytest.param("maintenance: {retry_after: 1000h}",
                     ['routes[0].maintenance.retry_after: "1000h" must be at most 720h (30 days)'], id="bounded"),
    ],
)
def test_problems_name_the_path_and_the_value(route, expected):
    assert problems(route) == expected


def test_problems_in_defaults_are_reported_once():
    assert problems(defaults="cors: {allow_origins: [nope]}\nmaintenance: {enabled: maybe}") == [
        'defaults.cors.allow_origins[0]: "nope" is not an origin (scheme://host[:port], no path)',
        'defaults.maintenance.enabled: "maybe" must be true or false',
    ]
