"""Config loading: every problem reported at once, each naming its path and quoting its value."""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.config import loader
from proxy.config.keys import yaml_keys
from proxy.config.loader import EMBEDDED, ConfigError, from_mapping, from_text, load, load_from_env
from proxy.core.settings import DEFAULT_MAX_BODY, Address, ServerSettings, UpstreamSettings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

BASE: dict[str, Any] = {
    "listen": "127.0.0.1:8080",
    "upstreams": {"legacy": {"url": "http://127.0.0.1:9000"}},
    "routes": [{"name": "site", "match": {"path_prefix": "/"}, "upstream": "legacy"}],
}
DELETE = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def changed(*edits: tuple[str, Any]) -> dict[str, Any]:
    """BASE with values set (or DELETEd) at dotted paths: ("routes[0].match.host", "x").

    Setting the index just past a list's end appends to it.
    """
    data = copy.deepcopy(BASE)
    for path, value in edits:
        steps = [key if key else int(index) for key, index in _STEP.findall(path)]
        parent = data
        for step in steps[:-1]:
            parent = parent[step]
        if value is DELETE:
            del parent[steps[-1]]
        elif isinstance(parent, list) and steps[-1] == len(parent):
            parent.append(value)
        else:
            parent[steps[-1]] = value
    return data


def problems_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_mapping(data, "test.yaml")
    assert caught.value.source == "test.yaml"
    return caught.value.problems


BAD_CONFIGS = [
    # Units.
    pytest.param(
        changed(("upstreams.legacy.read_timeout", "3 parsecs")),
        ['upstreams.legacy.read_timeout: "3 parsecs" is not a duration'],
        id="duration",
    ),
    pytest.param(
        changed(("upstreams.legacy.connect_timeout", -1)),
        ["upstreams.legacy.connect_timeout: -1 is not a duration"],
        id="negative-duration",
    ),
    pytest.param(
        changed(("upstreams.legacy.idle_timeout", float("inf"))),
        ["upstreams.legacy.idle_timeout: Infinity is not a duration"],
        id="infinite-duration",
    ),
    pytest.param(
        changed(("upstreams.legacy.max_line_size", "16 kilobytes")),
        ['upstreams.legacy.max_line_size: "16 kilobytes" is not a size'],
        id="size",
    ),
    pytest.param(
        changed(("upstreams.legacy.max_connections", 0)),
        ["upstreams.legacy.max_connections: 0 must be at least 1"],
        id="zero-connections",
    ),
    pytest.param(
        changed(("server", {"header_timeout": "soon", "max_headers": 0, "max_line_size": "0KiB"})),
        [
            'server.header_timeout: "soon" is not a duration',
            "server.max_headers: 0 must be at least 1",
            'server.max_line_size: "0KiB" must be at least 1',
        ],
        id="server-limits",
    ),
    # Unknown keys, with the keys that would have been right.
    pytest.param(
        changed(("upstreams.legacy.read_timout", "3s")),
        ["upstreams.legacy.read_timout: unknown key (known keys: connect_timeout, eject_after, eject_for, "
         "health_check, idle_timeout, max_connections, max_eject_for, max_line_size, max_pending, max_requests, "
         "read_timeout, retries, retry_backoff, retry_budget, retry_budget_min, retry_on, targets, tls, url)"],
        id="unknown-upstream-key",
    ),
    pytest.param(
        changed(("routes[0].match.path", "/")),
        ["routes[0].match.path: unknown key (known keys: host, methods, path_prefix, path_regex)"],
        id="unknown-match-key",
    ),
    pytest.param(
        changed(("server", {"read_timeout": "5s"})),
        ["server.read_timeout: unknown key (known keys: body_timeout, header_timeout, idle_poll, keepalive_timeout, "
         "lingering_time, max_headers, max_line_size, send_timeout, shutdown_timeout, stop_delay)"],
        id="unknown-server-key",
    ),
    pytest.param(
        changed(("lisen", "0.0.0.0:80")),
        ["lisen: unknown key (known keys: ..."],
        id="unknown-top-key",
    ),
    pytest.param(
        changed(("routes[0].strip", "/api")),
        ["routes[0].strip: unknown key (known keys: ..."],
        id="unknown-route-key",
    ),
    # Upstreams.
    pytest.param(
        changed(("upstreams.legacy.url", "ftp://legacy.internal")),
        ['upstreams.legacy.url: "ftp://legacy.internal" is not an upstream URL (http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])'],
        id="ftp-upstream",
    ),
    pytest.param(
        changed(("upstreams.legacy.url", "http://legacy.internal/app?x=1")),
        ['upstreams.legacy.url: "http://legacy.internal/app?x=1" is not an upstream URL (http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])'],
        id="upstream-with-query",
    ),
    pytest.param(
        changed(("upstreams.legacy.url", "legacy.internal:9000")),
        ['upstreams.legacy.url: "legacy.internal:9000" is not an upstream URL (http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])'],
        id="upstream-without-scheme",
    ),
    pytest.param(
        changed(("upstreams.legacy.url", "http://admin:secret@legacy.internal")),
        ['upstreams.legacy.url: "http://admin:secret@legacy.internal" must not hold credentials (user:password@)'],
        id="upstream-with-credentials",
    ),
    pytest.param(
        changed(("upstreams.legacy.url", "http://legacy internal:80")),
        ['upstreams.legacy.url: "http://legacy internal:80" has a host that is neither a name (letters, digits, - . _) '
         'nor an IP address'],
        id="upstream-host-with-a-space",
    ),
    pytest.param(
        changed(("upstreams.legacy.url", "http://-legacy-:80")),
        ['upstreams.legacy.url: "http://-legacy-:80" has a host that is neither a name (letters, digits, - . _) '
         'nor an IP address'],
        id="upstream-host-with-hyphens-at-its-ends",
    ),
    pytest.param(
        changed(("upstreams.legacy", {"read_timeout": "5s"})),
        ["upstreams.legacy.url: missing: an upstream needs a url (http://HOST:PORT) or targets"],
        id="upstream-without-url",
    ),
    pytest.param(
        changed(("upstreams.legacy", None)),
        ["upstreams.legacy: null must be a non-empty mapping"],
        id="upstream-empty",
    ),
    pytest.param(
        changed(("upstreams", {"legacy app": "http://127.0.0.1:9000"}), ("routes[0].upstream", "legacy app")),
        ['upstreams.legacy app: "legacy app" is not a valid upstream name (letters, digits, _ . -)'],
        id="upstream-name",
    ),
    pytest.param(
        changed(("upstreams", {})),
        ["upstreams: {} must be a non-empty mapping",
         'routes[0].upstream: "legacy" is not a defined upstream (defined: none)'],
        id="no-upstreams",
    ),
    # Routes.
    pytest.param(
        changed(("routes[0].upstream", "legasy")),
        ['routes[0].upstream: "legasy" is not a defined upstream (defined: legacy)'],
        id="undefined-upstream",
    ),
    pytest.param(
        changed(("routes[0].upstream", ["legacy"])),
        ['routes[0].upstream: ["legacy"] is not a defined upstream (defined: legacy)'],
        id="upstream-reference-is-a-list",
    ),
    pytest.param(
        changed(("routes[0].upstream", DELETE)),
        ["routes[0].upstream: null is not a defined upstream (defined: legacy)"],
        id="route-without-upstream",
    ),
    pytest.param(
        changed(("routes[0].match", DELETE)),
        ["routes[0].match: null must be a non-empty mapping"],
        id="route-without-match",
    ),
    pytest.param(
        changed(("routes", [])),
        ["routes: [] must be a non-empty list of routes"],
        id="no-routes",
    ),
    pytest.param(
        changed(("routes", [{"name": "site", "match": {"path_prefix": "/"}, "upstream": "legacy"}] * 2)),
        ['routes[1].name: "site" is used by an earlier route'],
        id="duplicate-route-names",
    ),
    pytest.param(
        changed(("routes", [
            {"name": "site", "match": {"path_prefix": "/"}, "upstream": "nowhere"},
            {"name": "site", "match": {"path_prefix": "/"}, "upstream": "legacy"},
        ])),
        ['routes[0].upstream: "nowhere" is not a defined upstream (defined: legacy)',
         'routes[1].name: "site" is used by an earlier route'],
        id="duplicate-name-of-an-invalid-route",
    ),
    pytest.param(
        changed(("routes[0].name", "my site")),
        ['routes[0].name: "my site" is not a valid route name (letters, digits, _ . -)'],
        id="route-name",
    ),
    pytest.param(
        changed(("routes", ["site"])),
        ['routes[0]: "site" must be a non-empty mapping'],
        id="route-not-a-mapping",
    ),
    pytest.param(
        changed(("routes[0].mach", {"path_prefix": "/"}), ("routes[0].match", DELETE)),
        ["routes[0].mach: unknown key (known keys: ...",
         "routes[0].match: null must be a non-empty mapping"],
        id="misspelt-match",
    ),
    pytest.param(
        changed(("routes[0].match.path_regex", "^/reports/([0-9]+$")),
        ['routes[0].match.path_regex: "^/reports/([0-9]+$" is not a regular expression '
         "(missing ), unterminated subpattern at position 10)"],
        id="regex",
    ),
    pytest.param(
        changed(("routes[0].match.path_regex", 42)),
        ["routes[0].match.path_regex: 42 must be a string"],
        id="regex-not-a-string",
    ),
    pytest.param(
        changed(("routes[0].match.methods", ["GET", "FETCH ALL", 7])),
        ['routes[0].match.methods: "FETCH ALL" is not an HTTP method',
         "routes[0].match.methods: 7 is not an HTTP method"],
        id="methods",
    ),
    pytest.param(
        changed(("routes[0].match.methods", "GET")),
        ['routes[0].match.methods: "GET" must be a non-empty list of methods'],
        id="methods-not-a-list",
    ),
    pytest.param(
        changed(("routes[0].match.methods", [])),
        ["routes[0].match.methods: [] must be a non-empty list of methods"],
        id="methods-empty",
    ),
    pytest.param(
        changed(("routes[0].match.host", "example.com:8080")),
        ['routes[0].match.host: "example.com:8080" is not a host name (example.com or *.example.com)'],
        id="host-with-port",
    ),
    pytest.param(
        changed(("routes[0].match.host", ["ok.example.com", "exa mple.com", "api.*.example.com", 42])),
        ['routes[0].match.host: "exa mple.com" is not a host name (example.com or *.example.com)',
         'routes[0].match.host: "api.*.example.com" is not a host name (example.com or *.example.com)',
         "routes[0].match.host: 42 is not a host name (example.com or *.example.com)"],
        id="hosts",
    ),
    pytest.param(
        changed(("routes[0].match.path_prefix", "api/")),
        ['routes[0].match.path_prefix: "api/" must be a path starting with /'],
        id="path-prefix",
    ),
    pytest.param(
        changed(("routes[0].strip_prefix", "api")),
        ['routes[0].strip_prefix: "api" must be a path starting with /'],
        id="strip-prefix",
    ),
    pytest.param(
        changed(("routes[0].host_header", "original")),
        ['routes[0].host_header: "original" must be upstream or client'],
        id="host-header",
    ),
    pytest.param(
        changed(("routes[0].max_body_size", "1 tonne")),
        ['routes[0].max_body_size: "1 tonne" is not a size (or null for no limit)'],
        id="max-body-size",
    ),
    pytest.param(
        # A bad default is reported once, under `defaults`, not under each route.
        changed(("defaults", {"host_header": "original", "max_body_size": "lots"}),
                ("routes[1]", {"name": "api", "match": {"path_prefix": "/api/"}, "upstream": "legacy"})),
        ['defaults.host_header: "original" must be upstream or client',
         'defaults.max_body_size: "lots" is not a size (or null for no limit)'],
        id="bad-defaults-once",
    ),
    # Addresses.
    pytest.param(changed(("listen", "8080")),
                 ['listen: "8080" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)'], id="listen-port-only"),
    pytest.param(changed(("listen", 8080)),
                 ["listen: 8080 is not an address (HOST:PORT, e.g. 0.0.0.0:8080)"], id="listen-number"),
    pytest.param(changed(("listen", "localhost:http")),
                 ['listen: "localhost:http" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)'], id="listen-named-port"),
    pytest.param(changed(("listen", "127.0.0.1:65536")),
                 ['listen: "127.0.0.1:65536" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)'], id="listen-port-range"),
    pytest.param(changed(("listen", "my host:80")),
                 ['listen: "my host:80" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)'], id="listen-bad-host"),
    pytest.param(changed(("admin", "localhost")),
                 ['admin: "localhost" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)'], id="admin"),
    # The rest of the top level.
    pytest.param(
        changed(("trusted_proxies", ["10.0.0.0/8", "10.0.0.0/33", "pods"])),
        ['trusted_proxies[1]: "10.0.0.0/33" is not an IP address or CIDR range',
         'trusted_proxies[2]: "pods" is not an IP address or CIDR range'],
        id="trusted-proxies",
    ),
    pytest.param(
        changed(("trusted_proxies", "10.0.0.0/8")),
        ['trusted_proxies: "10.0.0.0/8" must be a list of addresses or CIDR ranges'],
        id="trusted-proxies-not-a-list",
    ),
    pytest.param(
        changed(("brand", {"name": "Acme", "logo": {"url": "/logo.svg"}, "dark": True})),
        ['brand.logo: {"url": "/logo.svg"} must be a string', "brand.dark: true must be a string"],
        id="brand",
    ),
    pytest.param(
        ["listen: 0.0.0.0:8080"],
        ['(top level): ["listen: 0.0.0.0:8080"] must be a mapping',
         "upstreams: null must be a non-empty mapping",
         "routes: null must be a non-empty list of routes"],
        id="top-level-list",
    ),
    pytest.param(
        None,
        ["upstreams: null must be a non-empty mapping", "routes: null must be a non-empty list of routes"],
        id="empty-file",
    ),
    # Counts are whole numbers: no units, no fractions.
    pytest.param(
        changed(("upstreams.legacy.retries", "2KiB")),
        ['upstreams.legacy.retries: "2KiB" is not a whole number'],
        id="count-with-a-unit",
    ),
    pytest.param(
        changed(("upstreams.legacy.max_connections", 2.5), ("server", {"max_headers": "100k"})),
        ['server.max_headers: "100k" is not a whole number',
         "upstreams.legacy.max_connections: 2.5 is not a whole number"],
        id="count-fraction-and-unit",
    ),
    pytest.param(
        changed(("upstreams.legacy.retries", -1), ("upstreams.legacy.max_connections", True)),
        ["upstreams.legacy.retries: -1 is not a whole number",
         "upstreams.legacy.max_connections: true is not a whole number"],
        id="count-negative-and-bool",
    ),
    pytest.param(
        changed(("upstreams.legacy.retries", 10**7), ("upstreams.legacy.max_connections", "1000001")),
        ["upstreams.legacy.retries: 10000000 must be at most 1000000",
         'upstreams.legacy.max_connections: "1000001" must be at most 1000000'],
        id="count-too-large",
    ),
    pytest.param(
        changed(("upstreams.legacy.retries", 101)),
        ["upstreams.legacy.retries: 101 must be at most 100"],
        id="retries-past-a-float-of-backoff",
    ),
    # Values that would pass a type check and fail at run time.
    pytest.param(
        changed(("upstreams.legacy.connect_timeout", 10**20), ("upstreams.legacy.idle_timeout", "721h")),
        ["upstreams.legacy.connect_timeout: 100000000000000000000 must be at most 720h (30 days)",
         'upstreams.legacy.idle_timeout: "721h" must be at most 720h (30 days)'],
        id="duration-too-long",
    ),
    pytest.param(
        changed(("upstreams.legacy.read_timeout", 0), ("upstreams.legacy.connect_timeout", "0ms")),
        ["upstreams.legacy.read_timeout: 0 must be more than 0",
         'upstreams.legacy.connect_timeout: "0ms" must be more than 0'],
        id="timeout-zero",
    ),
    pytest.param(
        changed(("server", {"idle_poll": "20ms"})),
        ['server.idle_poll: "20ms" must be at most 10ms'],
        id="idle-poll-too-long",
    ),
    pytest.param(
        changed(("server", {"stop_delay": float("nan")})),
        ["server.stop_delay: NaN is not a duration"],
        id="duration-nan",
    ),
    pytest.param(
        changed(("routes[0].max_body_size", 2**41), ("defaults", {"max_error_body": "2048GiB"})),
        ["defaults.max_error_body: \"2048GiB\" must be at most 1TiB",
         "routes[0].max_body_size: 2199023255552 must be at most 1TiB (or null for no limit)"],
        id="size-too-large",
    ),
    pytest.param(
        changed(("routes[0].match.path_regex", "a{4294967296}")),
        ['routes[0].match.path_regex: "a{4294967296}" is not a regular expression (the repetition number is too large)'],
        id="regex-repeat-overflow",
    ),
    pytest.param(
        changed(("routes[0].match.path_regex", "(" * 5000 + ")" * 5000)),
        ['routes[0].match.path_regex: "((((((...'],
        id="regex-nested-groups",
    ),
    pytest.param(
        changed(("brand", {"name": 16**5000}), ("routes[0].match.methods", [16**5000])),
        ["brand.name: <a number of 6021 digits> must be a string",
         "routes[0].match.methods: <a number of 6021 digits> is not an HTTP method"],
        id="integer-past-str-limit",
    ),
    pytest.param(
        changed(("admin", 0)),
        ["admin: 0 is not an address (HOST:PORT, e.g. 0.0.0.0:8080)"],
        id="admin-zero-is-not-off",
    ),
    # Several problems at once, in the order of the file.
    pytest.param(
        changed(
            ("listen", "0.0.0.0"),
            ("upstreams.legacy.read_timeout", "3 parsecs"),
            ("upstreams.legacy.max_connections", "many"),
            ("routes[0].upstream", "legasy"),
            ("routes[0].match.methods", ["GET", "GET ALL"]),
        ),
        ['listen: "0.0.0.0" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)',
         'upstreams.legacy.read_timeout: "3 parsecs" is not a duration',
         'upstreams.legacy.max_connections: "many" is not a whole number',
         'routes[0].match.methods: "GET ALL" is not an HTTP method',
         'routes[0].upstream: "legasy" is not a defined upstream (defined: legacy)'],
        id="several-problems",
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD_CONFIGS)
def test_bad_config_names_path_and_value(data, expected):
    problems = problems_of(data)
    assert len(problems) == len(expected), problems
    for problem, want in zip(problems, expected):
        if want.endswith("..."):
            assert problem.startswith(want[:-3]), problem
        else:
            assert problem == want


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param("upstreams.legacy.connect_timeout", 10**400, "must be at most 720h (30 days)", id="huge-int-duration"),
        pytest.param("upstreams.legacy.read_timeout", "1" * 401, "must be at most 720h (30 days)", id="huge-string-duration"),
        pytest.param("upstreams.legacy.max_line_size", "9" * 5000, "is not a size", id="digits-past-int-limit"),
        pytest.param("routes[0].upstream", "x" * 100_000, "is not a defined upstream (defined: legacy)", id="long-string"),
        pytest.param("routes[0].match", {f"k{i}": i for i in range(100_000)}, "...", id="large-mapping"),
    ],
)
def test_a_huge_value_gives_one_short_problem(path, value, message):
    [problem, *more] = problems_of(changed((path, value)))
    assert problem.startswith(path) and len(problem) < 300, problem[:500]
    assert problem.endswith(f" {message}") or message == "...", problem
    assert len(more) <= 100 and all(len(line) < 300 for line in more)


def test_many_problems_are_cut_at_a_hundred():
    data = changed(("routes", [{"name": f"r{i}", "match": {"path_prefix": "/"}, "upstream": "nowhere"} for i in range(300)]))
    problems = problems_of(data)
    assert len(problems) == 101
    assert problems[-1] == "... and 200 more problems"


def test_counts_take_a_plain_number_or_its_digits():
    settings = from_mapping(changed(("upstreams.legacy.retries", "3"), ("upstreams.legacy.max_connections", 1),
                                    ("server", {"max_headers": 50, "max_line_size": "16KiB", "keepalive_timeout": 0})), "t")
    upstream = settings.upstreams["legacy"]
    assert (upstream.retries, upstream.max_connections) == (3, 1)
    assert (settings.server.max_headers, settings.server.max_line_size, settings.server.keepalive_timeout) == (50, 16384, 0.0)


def test_key_sets_follow_the_settings_fields():
    fields = {field.name for field in dataclasses.fields(ServerSettings)}
    assert loader._SERVER_KEYS == fields
    assert loader._UPSTREAM_KEYS == {field.name for field in dataclasses.fields(UpstreamSettings) if field.init} - {"name"}
    assert "defaults" in loader._TOP_KEYS and "errors" not in loader._TOP_KEYS and "source" not in loader._TOP_KEYS
    with pytest.raises(TypeError, match="ServerSettings has no field max_header"):
        yaml_keys(ServerSettings, {"max_header": None})


def test_unknown_key_lists_the_known_ones():
    [problem] = problems_of(changed(("routes[0].upstrem", "legacy")))
    known = problem.partition("(known keys: ")[2].rstrip(")").split(", ")
    assert {"name", "match", "upstream", "strip_prefix", "host_header", "max_body_size"} <= set(known)
    assert known == sorted(known)


def test_problems_are_in_the_error_message():
    with pytest.raises(ConfigError) as caught:
        from_mapping(changed(("routes[0].upstream", "legasy")), "legacy.yaml")
    assert str(caught.value) == 'legacy.yaml: routes[0].upstream: "legasy" is not a defined upstream (defined: legacy)'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("upstreams: {legacy: http://x\nroutes: []\n",
                     "line 2, column 7: not valid YAML (expected ',' or '}', but got ':')", id="unclosed-flow-mapping"),
        pytest.param("upstreams:\n\tlegacy: http://x\n",
                     "line 2, column 1: not valid YAML (found character '\\t' that cannot start any token)", id="tab"),
        pytest.param("routes:\n  - name: a\n   upstream: b\n",
                     "line 3, column 4: not valid YAML (expected <block end>, but found '<block mapping start>')",
                     id="bad-indent"),
        pytest.param("listen: \"127.0.0.1:8080\n",
                     "line 2, column 1: not valid YAML (found unexpected end of stream)", id="unterminated-string"),
        pytest.param("--- {}\n--- {}\n",
                     "line 2, column 1: not valid YAML (expected a single document in the stream, but found another document)",
                     id="two-documents"),
        pytest.param("upstreams:\n  legacy: http://127.0.0.1:9000\n  legacy: http://127.0.0.1:9001\n",
                     'line 3, column 3: not valid YAML (found duplicate key "legacy")', id="duplicate-key"),
        pytest.param("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
                     'line 2, column 1: not valid YAML (found duplicate key "listen")', id="duplicate-top-key"),
        pytest.param("brand: !!python/object/apply:os.system [echo hi]\n",
                     "line 1, column 8: not valid YAML (could not determine a constructor for the tag "
                     "'tag:yaml.org,2002:python/object/apply:os.system')", id="python-tag"),
    ],
)
def test_yaml_syntax_errors_give_line_and_column(text, problem):
    with pytest.raises(ConfigError) as caught:
        from_text(text, "bad.yaml")
    assert caught.value.problems == [problem]
    assert caught.value.source == "bad.yaml"


LAUGHS = "".join(
    f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9 if previous else ['"lol"'] * 9) + "]\n"
    for previous, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
) + "routes: *h\n"
VALID = "upstreams: {legacy: 'http://127.0.0.1:9000'}\nroutes: [{match: {path_prefix: /}, upstream: legacy}]\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(LAUGHS, "line 5, column 16: not valid YAML (aliases expand the document past 100000 values "
                     "and characters)", id="billion-laughs"),
        pytest.param("brand: " + "[" * 3000 + "]" * 3000 + "\n",
                     "line 1, column 108: not valid YAML (nested deeper than 100 levels)", id="deep-nesting"),
        pytest.param("a: &a " + "[" * 60 + "x" + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n",
                     "line 2, column 54: not valid YAML (nested deeper than 100 levels)", id="deep-through-an-alias"),
        pytest.param("brand: &b {name: [*b]}\n",
                     "line 1, column 19: not valid YAML (alias *b is inside the collection it names)", id="recursive-alias"),
        pytest.param("listen: " + "9" * 5000 + "\n",
                     'line 1, column 9: not valid YAML (cannot read "99999999999999999999999999999999999999… as int: '
                     "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits)",
                     id="integer-past-int-limit"),
        pytest.param("listen: 2001-02-30\n",
                     'line 1, column 9: not valid YAML (cannot read "2001-02-30" as timestamp: day is out of range for month)',
                     id="impossible-date"),
        pytest.param("listen: \x01\n", "character 9: not valid YAML (unacceptable character #x0001)",
                     id="control-character"),
        pytest.param('brand: {name: "Acme \\udcff"}\n',
                     "line 1, column 15: not valid YAML (\\udcff is half of a surrogate pair, not a character)",
                     id="lone-surrogate"),
    ],
)
def test_hostile_yaml_is_one_short_problem(text, problem):
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        from_text(text, "bad.yaml")
    assert caught.value.problems == [problem]
    assert time.monotonic() - started < 2


def test_aliases_within_the_budget_are_fine():
    # 4**6 scalars once expanded: well inside the budget, and each level still a valid JSON template.
    anchors = ", ".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "x"] * 4) + "]" for i in range(6))
    settings = from_text(VALID + f"defaults: {{json_style: custom, json_template: {{{anchors}}}}}\n", "ok.yaml")
    assert len(settings.errors.json_template["a5"][0][0][0][0][0]) == 4


def test_a_huge_duration_in_yaml_is_a_problem_not_a_crash():
    with pytest.raises(ConfigError) as caught:
        from_text(VALID.replace("'http://127.0.0.1:9000'", "{url: 'http://127.0.0.1:9000', connect_timeout: "
                                + "1" * 401 + "}"))
    [problem] = caught.value.problems
    assert problem.startswith("upstreams.legacy.connect_timeout: 1111") and problem.endswith("must be at most 720h (30 days)")


def test_yaml_merge_keys_may_override():
    settings = from_text(
        """
upstreams:
  legacy: &base {url: "http://127.0.0.1:9000", read_timeout: 5s}
  reports:
    <<: *base
    read_timeout: 5m
routes: [{match: {path_prefix: /}, upstream: reports}]
"""
    )
    assert settings.upstreams["legacy"].read_timeout == 5.0
    assert settings.upstreams["reports"].read_timeout == 300.0
    assert str(settings.upstreams["reports"].url) == "http://127.0.0.1:9000"


def test_a_valid_config_becomes_settings():
    settings = from_text(
        """
listen: "[::1]:8081"
server: {header_timeout: 5s, max_line_size: 16KiB}
upstreams:
  api: {url: "http://127.0.0.1:8000/v2", connect_timeout: 150ms, read_timeout: 1m30s, max_connections: 32}
  web: http://127.0.0.1:3000
trusted_proxies: [10.0.0.0/8, 192.168.1.1]
defaults: {host_header: client, max_body_size: 1MiB}
routes:
  - name: api
    match: {host: [API.Example.com, "*.api.example.com"], path_prefix: /api/, path_regex: "^/api/v[0-9]+/", methods: [get, PUT]}
    upstream: api
    strip_prefix: /api
    host_header: upstream
  - match: {path_prefix: /}
    upstream: web
    max_body_size: null
""",
        "full.yaml",
    )
    assert settings.source == "full.yaml"
    assert settings.listen == Address("::1", 8081)
    assert (settings.server.header_timeout, settings.server.max_line_size) == (5.0, 16384)
    api = settings.upstreams["api"]
    assert (str(api.url), api.connect_timeout, api.read_timeout, api.max_connections) == (
        "http://127.0.0.1:8000/v2", 0.15, 90.0, 32)
    assert settings.upstreams["web"].read_timeout == 60.0
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]
    first, second = settings.routes
    assert first.match.hosts == ("api.example.com", "*.api.example.com")
    assert first.match.methods == frozenset({"GET", "PUT"})
    assert first.match.path_regex.pattern == "^/api/v[0-9]+/"
    assert (first.upstream, first.strip_prefix, first.host_header, first.max_body_size) == (api, "/api", "upstream", 1024**2)
    assert (second.name, second.host_header, second.max_body_size, second.match.methods) == ("route1", "client", None, None)


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        pytest.param("127.0.0.1:8080", Address("127.0.0.1", 8080), id="ipv4"),
        pytest.param("[::]:8080", Address("::", 8080), id="ipv6"),
        pytest.param(":8080", Address("0.0.0.0", 8080), id="no-host-is-all-interfaces"),
        pytest.param("localhost:0", Address("localhost", 0), id="name-and-any-port"),
    ],
)
def test_listen_addresses(listen, address):
    assert from_mapping(changed(("listen", listen)), "t").listen == address


def test_defaults_apply_unless_a_route_overrides():
    settings = from_mapping(changed(
        ("defaults", {"host_header": "client", "max_body_size": "2MiB"}),
        ("routes[1]", {"name": "big", "match": {"path_prefix": "/upload"}, "upstream": "legacy",
                       "max_body_size": None, "host_header": "upstream"}),
    ), "t")
    site, big = settings.routes
    assert (site.host_header, site.max_body_size) == ("client", 2 * 1024**2)
    assert (big.host_header, big.max_body_size) == ("upstream", None)
    assert from_mapping(BASE, "t").routes[0].max_body_size == DEFAULT_MAX_BODY


# --- files and the environment -------------------------------------------------

GOOD_FILE = """\
listen: 127.0.0.1:7000
upstreams: {app: "http://127.0.0.1:3000"}
routes: [{match: {path_prefix: /}, upstream: app}]
"""


@pytest.fixture
def good_file(tmp_path) -> str:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_FILE)
    return str(path)


@pytest.fixture
def other_file(tmp_path) -> str:
    path = tmp_path / "other.yaml"
    path.write_text(GOOD_FILE.replace("7000", "7001"))
    return str(path)


def _upstream_url(settings) -> str:
    [upstream] = settings.upstreams.values()
    return str(upstream.url)


def test_embedded_config_takes_the_upstream_from_the_environment():
    settings = load_from_env({"ERRORPROXY_UPSTREAM": "http://127.0.0.1:9000"})
    assert settings.source == EMBEDDED
    assert _upstream_url(settings) == "http://127.0.0.1:9000"
    assert settings.listen == Address("0.0.0.0", 8080)
    assert [route.match.path_prefix for route in settings.routes] == ["/"]


@pytest.mark.parametrize("env", [{}, {"ERRORPROXY_UPSTREAM": ""}, {"ERRORPROXY_LISTEN": "127.0.0.1:1"}],
                         ids=["empty-env", "empty-variable", "listen-only"])
def test_no_upstream_and_no_config_is_one_clear_problem(env):
    with pytest.raises(ConfigError) as caught:
        load_from_env(env)
    assert caught.value.source == EMBEDDED
    assert caught.value.problems == ["no upstream: pass --upstream URL or set ERRORPROXY_UPSTREAM"]


def test_bad_upstream_from_the_environment_is_quoted():
    with pytest.raises(ConfigError) as caught:
        load_from_env({"ERRORPROXY_UPSTREAM": "ftp://legacy:21"})
    assert caught.value.problems == [
        'upstreams.default.url: "ftp://legacy:21" is not an upstream URL (http://HOST[:PORT][/base], https://..., or unix:/PATH[:/base])'
    ]


def test_config_file_from_the_environment(good_file):
    settings = load_from_env({"ERRORPROXY_CONFIG": good_file})
    assert settings.source == good_file
    assert settings.listen == Address("127.0.0.1", 7000)


def test_upstream_variable_is_ignored_with_a_config_file(good_file):
    settings = load_from_env({"ERRORPROXY_CONFIG": good_file, "ERRORPROXY_UPSTREAM": "http://127.0.0.1:1"})
    assert _upstream_url(settings) == "http://127.0.0.1:3000"


@pytest.mark.parametrize(
    ("env", "flags", "listen"),
    [
        pytest.param({}, {}, Address("127.0.0.1", 7000), id="file"),
        pytest.param({"ERRORPROXY_LISTEN": "127.0.0.1:7100"}, {}, Address("127.0.0.1", 7100), id="variable-over-file"),
        pytest.param({"ERRORPROXY_LISTEN": "127.0.0.1:7100"}, {"listen": "127.0.0.1:7200"},
                     Address("127.0.0.1", 7200), id="flag-over-variable"),
        pytest.param({"ERRORPROXY_LISTEN": ""}, {}, Address("127.0.0.1", 7000), id="empty-variable-is-unset"),
    ],
)
def test_listen_precedence(good_file, env, flags, listen):
    assert load_from_env({"ERRORPROXY_CONFIG": good_file, **env}, **flags).listen == listen


def test_config_flag_beats_config_variable(good_file, other_file):
    settings = load_from_env({"ERRORPROXY_CONFIG": other_file}, config=good_file)
    assert settings.source == good_file


def test_upstream_flag_beats_upstream_variable():
    settings = load_from_env({"ERRORPROXY_UPSTREAM": "http://127.0.0.1:1"}, upstream="http://127.0.0.1:2")
    assert _upstream_url(settings) == "http://127.0.0.1:2"


def test_upstream_flag_beats_config_variable(good_file):
    # An image may set ERRORPROXY_CONFIG; `run --upstream URL` still means the embedded config.
    settings = load_from_env({"ERRORPROXY_CONFIG": good_file}, upstream="http://127.0.0.1:2")
    assert settings.source == EMBEDDED
    assert _upstream_url(settings) == "http://127.0.0.1:2"


def test_upstream_flag_with_config_flag_is_a_problem(good_file):
    with pytest.raises(ConfigError) as caught:
        load_from_env({}, config=good_file, upstream="http://127.0.0.1:2")
    assert caught.value.problems == ["--upstream only applies to the embedded config; set upstreams in the file"]


def test_bad_listen_variable_is_quoted(good_file):
    with pytest.raises(ConfigError) as caught:
        load_from_env({"ERRORPROXY_CONFIG": good_file, "ERRORPROXY_LISTEN": "nope"})
    assert caught.value.problems == ['listen: "nope" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)']


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "cannot read the file: No such file or directory", id="missing"),
        pytest.param(b'listen: "\xff\xfe"\n', "cannot read the file: not UTF-8 text (byte 9)", id="not-utf8"),
        pytest.param(b"routes: [\n", "line 2, column 1: not valid YAML (expected the node content, but found '<stream end>')",
                     id="yaml"),
    ],
)
def test_unreadable_files(tmp_path, content, problem):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert (caught.value.source, caught.value.problems) == (str(path), [problem])


def test_a_file_past_4mib_is_not_read_whole(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.problems == ["cannot read the file: larger than 4MiB, so not a config file"]


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path))
    assert caught.value.problems == ["cannot read the file: Is a directory"]


# --- the example configs ------------------------------------------------------

EXAMPLES = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_documented_examples_exist():
    assert {"legacy.yaml", "dev-gateway.yaml", "sidecar.yaml", "branded.yaml"} <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_config_is_valid(path):
    settings = load(str(path))
    assert settings.routes
    for route in settings.routes:
        assert route.upstream is settings.upstreams[route.upstream.name]


def test_example_configs_match_their_purpose():
    gateway = load(str(CONFIG_DIR / "dev-gateway.yaml"))
    assert len(gateway.upstreams) >= 3
    assert any(route.match.hosts for route in gateway.routes)
    assert any(route.host_header == "client" for route in gateway.routes)
    sidecar = load(str(CONFIG_DIR / "sidecar.yaml"))
    assert sidecar.listen == Address("0.0.0.0", 8080)
    assert [str(u.url) for u in sidecar.upstreams.values()] == ["http://127.0.0.1:3000"]
    assert sidecar.trusted_proxies


def test_embedded_config_is_valid():
    settings = load(None, upstream="http://127.0.0.1:9000", listen="127.0.0.1:0")
    assert settings.listen == Address("127.0.0.1", 0)


# --- immutability -------------------------------------------------------------

@pytest.fixture(scope="module")
def settings():
    return load(str(CONFIG_DIR / "legacy.yaml"))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda s: setattr(s, "listen", Address("0.0.0.0", 1)), id="settings-attribute"),
        pytest.param(lambda s: setattr(s.server, "header_timeout", 0), id="server-attribute"),
        pytest.param(lambda s: setattr(s.upstreams["legacy"], "read_timeout", 0), id="upstream-attribute"),
        pytest.param(lambda s: s.upstreams.__setitem__("evil", s.upstreams["legacy"]), id="upstreams-mapping"),
        pytest.param(lambda s: s.upstreams.pop("legacy"), id="upstreams-pop"),
        pytest.param(lambda s: s.routes.append(s.routes[0]), id="routes-list"),
        pytest.param(lambda s: setattr(s.routes[0], "upstream", None), id="route-attribute"),
        pytest.param(lambda s: setattr(s.routes[0].match, "path_prefix", "/"), id="match-attribute"),
        pytest.param(lambda s: s.routes[0].match.methods.add("DELETE"), id="match-methods"),
        pytest.param(lambda s: s.brand.__setitem__("name", "Evil"), id="brand-mapping"),
        pytest.param(lambda s: setattr(s, "extra", 1), id="new-attribute"),
    ],
)
def test_settings_are_immutable(settings, mutate):
    before = repr(settings)
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        mutate(settings)
    assert repr(settings) == before
