"""loader_policy, through loader.from_text: error-rewriting keys, their checks and inheritance."""

from __future__ import annotations

import json
from textwrap import dedent, indent

import pytest

from proxy.config.loader import ConfigError, from_text
from proxy.core.settings import ErrorPolicy, ErrorRule, SuccessFalse
from proxy.core.status import StatusSet

POINTER_HINT = "is not a JSON pointer (e.g. /error/message)"
STATUS_HINT = "is not a status, class or range"
ERROR_STATUS_HINT = "is not an error status (400-599)"


def config(route: str = "", defaults: str = "") -> str:
    text = "upstreams: {legacy: 'http://127.0.0.1:9000'}\n"
    if defaults:
        text += "defaults:\n" + indent(dedent(defaults).strip("\n") + "\n", "  ")
    text += "routes:\n  - name: api\n    match: {path_prefix: /}\n    upstream: legacy\n"
    return text + indent(dedent(route), "    ")


def policy(route: str = "", defaults: str = "") -> ErrorPolicy:
    return from_text(config(route, defaults)).routes[0].errors


def problems(route: str = "", defaults: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_text(config(route, defaults))
    return caught.value.problems


# --- valid values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "inside", "outside"),
    [
        pytest.param("intercept: 409", [409], [408, 410, 500], id="single-code"),
        pytest.param("intercept: '409'", [409], [408], id="code-as-string"),
        pytest.param("intercept: 4xx", [400, 451, 499], [399, 500], id="class"),
        pytest.param("intercept: [409, 5xx, 420-429]", [409, 420, 429, 500, 599], [400, 419, 430, 499], id="mixed"),
        pytest.param("intercept: ['500 - 504']", [500, 504], [505], id="range-with-spaces"),
        pytest.param("", [400, 404, 599], [200, 304, 399], id="default-4xx-5xx"),
    ],
)
def test_intercept(yaml, inside, outside):
    intercept = policy(yaml).intercept
    assert all(status in intercept for status in inside)
    assert not any(status in intercept for status in outside)


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param("origins: upstream", {"upstream"}, id="upstream"),
        pytest.param("origins: proxy", {"proxy"}, id="proxy"),
        pytest.param("origins: both", {"upstream", "proxy"}, id="both"),
        pytest.param("", {"upstream", "proxy"}, id="default-both"),
    ],
)
def test_origins(yaml, expected):
    assert policy(yaml).origins == expected


@pytest.mark.parametrize("value", ["auto", "json", "html", "text", "passthrough"])
def test_formats(value):
    assert policy(f"format: {value}").format == value


@pytest.mark.parametrize("value", ["problem", "envelope"])
def test_json_styles(value):
    assert policy(f"json_style: {value}").json_style == value


def test_a_custom_template_is_json_as_loaded():
    errors = policy("json_style: custom\njson_template: {ok: false, code: '${status}', n: [1, 2.5, null], '7': x}")
    assert dict(errors.json_template) == {"ok": False, "code": "${status}", "n": [1, 2.5, None], "7": "x"}
    assert json.loads(json.dumps(dict(errors.json_template), allow_nan=False)) == dict(errors.json_template)


def test_custom_style_with_template():
    errors = policy("json_style: custom\njson_template: {code: '${status}', error: {msg: '${title}'}}")
    assert errors.json_style == "custom"
    assert dict(errors.json_template) == {"code": "${status}", "error": {"msg": "${title}"}}


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param("max_error_body: 1MiB", 1024 * 1024, id="mib"),
        pytest.param("max_error_body: 4096", 4096, id="bytes"),
        pytest.param("", 64 * 1024, id="default-64kib"),
    ],
)
def test_max_error_body(yaml, expected):
    assert policy(yaml).max_error_body == expected


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param("expose_upstream_detail: false", False, id="false"),
        pytest.param("expose_upstream_detail: true", True, id="true"),
        pytest.param("", True, id="default-true"),
    ],
)
def test_expose_upstream_detail(yaml, expected):
    assert policy(yaml).expose_upstream_detail is expected


@pytest.mark.parametrize(
    ("yaml", "defaults", "expected"),
    [
        pytest.param("", "", True, id="default-true"),
        pytest.param("field_errors: false", "", False, id="false"),
        pytest.param("", "field_errors: false", False, id="inherited-from-defaults"),
        pytest.param("field_errors: true", "field_errors: false", True, id="route-overrides-defaults"),
    ],
)
def test_field_errors(yaml, defaults, expected):
    assert policy(yaml, defaults).field_errors is expected


def test_full_rule():
    errors = policy("""
        errors:
          - status: [500, 502-503]
            body_matches: "OptimisticLock|duplicate key"
            json_equals: {/error/code: CONFLICT, /retryable: false}
            header_matches: {X-Error-Kind: "^conflict$"}
            type: https://errors.example.com/edit-conflict
            title: Edit conflict
            detail: Fetch it again.
            detail_pointer: /error/message
            extensions: {current_version: /currentVersion, etag: /meta/etag}
            rewrite_status: 409
          - status: 404
    """)
    first, second = errors.rules
    assert first.status == StatusSet(((500, 500), (502, 503)))
    assert first.body_matches.pattern == "OptimisticLock|duplicate key"
    assert first.json_equals == (("/error/code", "CONFLICT"), ("/retryable", False))
    assert [(name, p.pattern) for name, p in first.header_matches] == [("X-Error-Kind", "^conflict$")]
    assert (first.type, first.title, first.detail) == (
        "https://errors.example.com/edit-conflict", "Edit conflict", "Fetch it again.")
    assert first.detail_pointer == "/error/message"
    assert first.extensions == (("current_version", "/currentVersion"), ("etag", "/meta/etag"))
    assert first.rewrite_status == 409
    assert second == ErrorRule(status=StatusSet(((404, 404),)))


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param("success_false: {status: 422}", SuccessFalse(status=422), id="defaults"),
        pytest.param("success_false: {status: 409, max_body: 8KiB, pointer: /result/ok}",
                     SuccessFalse(status=409, max_body=8192, pointer="/result/ok"), id="all-keys"),
        pytest.param("", None, id="absent"),
    ],
)
def test_success_false(yaml, expected):
    assert policy(yaml).success_false == expected


# --- inheritance ---------------------------------------------------------------------------


def test_route_inherits_defaults():
    defaults = """
        intercept: [409]
        format: html
        json_style: envelope
        expose_upstream_detail: false
        max_error_body: 1KiB
        errors: [{status: 500, rewrite_status: 503}]
        success_false: {status: 422}
    """
    settings = from_text(config("", defaults))
    route = settings.routes[0].errors
    assert route == settings.errors
    assert (route.format, route.json_style, route.expose_upstream_detail, route.max_error_body) == (
        "html", "envelope", False, 1024)
    assert 409 in route.intercept and 500 not in route.intercept
    assert [rule.rewrite_status for rule in route.rules] == [503]
    assert route.success_false == SuccessFalse(status=422)


def test_route_overrides_only_what_it_sets():
    defaults = "intercept: [409]\nformat: html\nerrors: [{status: 500, rewrite_status: 503}]\n"
    settings = from_text(config("format: json\nerrors: [{status: 502, title: Down}]", defaults))
    route = settings.routes[0].errors
    assert route.format == "json"
    assert 409 in route.intercept and 500 not in route.intercept  # inherited
    assert [rule.title for rule in route.rules] == ["Down"]  # replaced, not appended
    assert settings.errors.format == "html"  # the defaults are not touched


def test_route_custom_style_uses_template_from_defaults():
    route = policy("json_style: custom", "json_template: {code: '${status}'}")
    assert (route.json_style, dict(route.json_template)) == ("custom", {"code": "${status}"})


def test_route_leaves_custom_style_from_defaults():
    route = policy("json_style: envelope", "json_style: custom\njson_template: {code: '${status}'}")
    assert route.json_style == "envelope"


def test_route_empty_errors_list_drops_default_rules():
    assert policy("errors: []", "errors: [{status: 500}]").rules == ()


# --- problems: each names its path and quotes the value ------------------------------------


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        # intercept
        pytest.param("intercept: 6xx", f'routes[0].intercept: "6xx" {STATUS_HINT}', id="intercept-class"),
        pytest.param("intercept: [409, 600]", f"routes[0].intercept: 600 {STATUS_HINT}", id="intercept-code"),
        pytest.param("intercept: [504-500]", f'routes[0].intercept: "504-500" {STATUS_HINT}', id="intercept-range"),
        pytest.param("intercept: true", f"routes[0].intercept: true {STATUS_HINT}", id="intercept-bool"),
        pytest.param("intercept: null", f"routes[0].intercept: null {STATUS_HINT}", id="intercept-null"),
        # origins, format, json_style
        pytest.param("origins: everywhere", 'routes[0].origins: "everywhere" must be upstream, proxy or both',
                     id="origins-word"),
        pytest.param("origins: [upstream, proxy]",
                     'routes[0].origins: ["upstream", "proxy"] must be upstream, proxy or both', id="origins-list"),
        pytest.param("origins: {upstream: true}",
                     'routes[0].origins: {"upstream": true} must be upstream, proxy or both', id="origins-mapping"),
        pytest.param("format: xml", 'routes[0].format: "xml" must be one of auto, json, html, text, passthrough',
                     id="format"),
        pytest.param("format: [json]", 'routes[0].format: ["json"] must be one of auto, json, html, text, passthrough',
                     id="format-list"),
        pytest.param("json_style: jsonapi", 'routes[0].json_style: "jsonapi" must be one of problem, envelope, custom',
                     id="json-style"),
        # json_template
        pytest.param("json_style: custom",
                     "routes[0].json_template: missing: json_style custom needs a json_template mapping",
                     id="custom-without-template"),
        pytest.param("json_style: custom\njson_template: []", "routes[0].json_template: [] must be a non-empty mapping",
                     id="custom-template-list"),
        pytest.param("json_template: {}", "routes[0].json_template: {} must be a non-empty mapping",
                     id="template-empty"),
        pytest.param("json_template: '${status}'", 'routes[0].json_template: "${status}" must be a non-empty mapping',
                     id="template-string"),
        # json_template: what YAML can spell and JSON cannot, found here instead of on every render
        pytest.param("json_template: {data: !!binary aGk=}",
                     """routes[0].json_template.data: "b'hi'" is binary data (!!binary), not a JSON value""",
                     id="template-binary"),
        pytest.param("json_template: {tags: !!set {a: null}}",
                     """routes[0].json_template.tags: "{'a'}" is a set (!!set), not a JSON value: use a list""",
                     id="template-set"),
        pytest.param("json_template: {error: {409: conflict}}",
                     "routes[0].json_template.error: 409 is not a string key (JSON object keys are strings: quote it)",
                     id="template-integer-key"),
        pytest.param("json_template: {at: 2024-01-01}",
                     'routes[0].json_template.at: "2024-01-01" is a date, not a JSON value: quote it to keep it as text',
                     id="template-date"),
        pytest.param("json_template: {ratio: [1, .nan]}", "routes[0].json_template.ratio[1]: NaN is not a finite number",
                     id="template-nan"),
        pytest.param("json_template: {big: 18446744073709551616}",
                     "routes[0].json_template.big: 18446744073709551616 is too large: JSON integers here fit in 64 bits",
                     id="template-int-past-64-bits"),
        pytest.param("errors: [{status: 409, json_equals: {/since: 2024-01-01}}]",
                     'routes[0].errors[0].json_equals./since: "2024-01-01" is a date, not a JSON value: '
                     "quote it to keep it as text", id="json-equals-date"),
        # a status that int() cannot read, quoted as written
        pytest.param("intercept: ['\u00b2']", f'routes[0].intercept: "\u00b2" {STATUS_HINT}', id="intercept-superscript"),
        # scalars
        pytest.param("expose_upstream_detail: 'yes'", 'routes[0].expose_upstream_detail: "yes" must be true or false',
                     id="expose-string"),
        pytest.param("field_errors: 1", "routes[0].field_errors: 1 must be true or false", id="field-errors-int"),
        pytest.param("max_error_body: lots", 'routes[0].max_error_body: "lots" is not a size', id="max-error-body"),
        # errors
        pytest.param("errors: {status: 409}", 'routes[0].errors: {"status": 409} must be a list of rules',
                     id="errors-mapping"),
        pytest.param("errors: [409]", "routes[0].errors[0]: 409 must be a non-empty mapping", id="rule-not-mapping"),
        pytest.param("errors: [{}]", "routes[0].errors[0]: {} must be a non-empty mapping", id="rule-empty"),
        pytest.param("errors: [{title: Conflict}]",
                     "routes[0].errors[0].status: missing: a rule needs the status it applies to",
                     id="rule-missing-status"),
        pytest.param("errors: [{status: 409}, {status: 6xx}]", f'routes[0].errors[1].status: "6xx" {STATUS_HINT}',
                     id="rule-status-class"),
        pytest.param("errors: [{status: 700}]", f"routes[0].errors[0].status: 700 {STATUS_HINT}", id="rule-status-700"),
        pytest.param("errors: [{status: []}]", "routes[0].errors[0].status: [] must name at least one status",
                     id="rule-status-empty"),
        pytest.param("errors: [{status: 409, body_matches: 5}]", "routes[0].errors[0].body_matches: 5 must be a string",
                     id="body-matches-int"),
        pytest.param("errors: [{status: 409, detail_pointer: error/message}]",
                     f'routes[0].errors[0].detail_pointer: "error/message" {POINTER_HINT}', id="detail-pointer-relative"),
        pytest.param("errors: [{status: 409, detail_pointer: /a~2b}]",
                     f'routes[0].errors[0].detail_pointer: "/a~2b" {POINTER_HINT}', id="detail-pointer-bad-escape"),
        pytest.param("errors: [{status: 409, detail_pointer: 5}]",
                     f"routes[0].errors[0].detail_pointer: 5 {POINTER_HINT}", id="detail-pointer-int"),
        pytest.param("errors: [{status: 409, extensions: {version: currentVersion}}]",
                     f'routes[0].errors[0].extensions.version: "currentVersion" {POINTER_HINT}', id="extension-pointer"),
        pytest.param("errors: [{status: 409, json_equals: {code: 1}}]",
                     f'routes[0].errors[0].json_equals: "code" {POINTER_HINT}', id="json-equals-pointer"),
        pytest.param("errors: [{status: 500, rewrite_status: 200}]",
                     f"routes[0].errors[0].rewrite_status: 200 {ERROR_STATUS_HINT}", id="rewrite-to-200"),
        pytest.param("errors: [{status: 500, rewrite_status: 302}]",
                     f"routes[0].errors[0].rewrite_status: 302 {ERROR_STATUS_HINT}", id="rewrite-to-302"),
        pytest.param("errors: [{status: 500, rewrite_status: '409'}]",
                     f'routes[0].errors[0].rewrite_status: "409" {ERROR_STATUS_HINT}', id="rewrite-string"),
        pytest.param("errors: [{status: 500, rewrite_status: 600}]",
                     f"routes[0].errors[0].rewrite_status: 600 {ERROR_STATUS_HINT}", id="rewrite-600"),
        pytest.param("errors: [{status: 500, rewrite_status: true}]",
                     f"routes[0].errors[0].rewrite_status: true {ERROR_STATUS_HINT}", id="rewrite-bool"),
        pytest.param("errors: [{status: 503, header_matches: {'X Maintenance': on}}]",
                     'routes[0].errors[0].header_matches: "X Maintenance" is not a header name', id="header-name-space"),
        pytest.param("errors: [{status: 503, header_matches: {'X-Maintenance:': on}}]",
                     'routes[0].errors[0].header_matches: "X-Maintenance:" is not a header name',
                     id="header-name-colon"),
        pytest.param("errors: [{status: 503, header_matches: {X-Maintenance: null}}]",
                     "routes[0].errors[0].header_matches.X-Maintenance: null must be a string", id="header-value-null"),
        pytest.param("errors: [{status: 503, header_matches: {X-Maintenance: 1}}]",
                     "routes[0].errors[0].header_matches.X-Maintenance: 1 must be a string", id="header-value-int"),
        pytest.param("errors: [{status: 409, title: 5}]", "routes[0].errors[0].title: 5 must be a string",
                     id="title-int"),
        pytest.param("errors: [{status: 409, type: [a]}]", 'routes[0].errors[0].type: ["a"] must be a string',
                     id="type-list"),
        # success_false
        pytest.param("success_false: true", "routes[0].success_false: true must be a non-empty mapping",
                     id="success-false-bool"),
        pytest.param("success_false: {}", "routes[0].success_false: {} must be a non-empty mapping",
                     id="success-false-empty"),
        pytest.param("success_false: {max_body: 1KiB}",
                     "routes[0].success_false.status: missing: the error status to answer with",
                     id="success-false-missing-status"),
        pytest.param("success_false: {status: 200}",
                     f"routes[0].success_false.status: 200 {ERROR_STATUS_HINT}", id="success-false-status-200"),
        pytest.param("success_false: {status: 422, pointer: success}",
                     f'routes[0].success_false.pointer: "success" {POINTER_HINT}', id="success-false-pointer"),
        pytest.param("success_false: {status: 422, max_body: big}",
                     'routes[0].success_false.max_body: "big" is not a size', id="success-false-max-body"),
    ],
)
def test_problem_line(route, expected):
    assert problems(route) == [expected]


@pytest.mark.parametrize(
    ("route", "prefix"),
    [
        pytest.param("errors: [{status: 409, body_matches: '('}]",
                     'routes[0].errors[0].body_matches: "(" is not a regular expression (', id="body-matches-regex"),
        pytest.param("errors: [{status: 503, header_matches: {X-A: '[a'}}]",
                     'routes[0].errors[0].header_matches.X-A: "[a" is not a regular expression (', id="header-regex"),
        pytest.param("errors: [{status: 409, stauts: 409}]", "routes[0].errors[0].stauts: unknown key (known keys: ",
                     id="rule-unknown-key"),
        pytest.param("success_false: {status: 422, path: /ok}", "routes[0].success_false.path: unknown key (known keys: ",
                     id="success-false-unknown-key"),
    ],
)
def test_problem_line_prefix(route, prefix):
    (line,) = problems(route)
    assert line.startswith(prefix)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(x|y*)*", "(?:\\w+\\s?)*!", "([a-z]{2,})+"])
def test_a_pattern_that_repeats_a_repeat_is_refused(pattern):
    # "(a+)+$" against "a" * 26 + "?" held every request of the proxy for seconds: an upstream chooses the body.
    assert problems("errors: [{status: 409, body_matches: '" + pattern + "'}]") == [
        f'routes[0].errors[0].body_matches: {json.dumps(pattern)} repeats a repeat, as (a+)+ does, which some '
        "text makes take exponential time; write it without (a+)"]


def test_intercept_takes_error_statuses_only():
    # A 200, a 304 or a 3xx was taken, and became a problem body at run time.
    hint = "is not an error status (400-599): only errors are rewritten"
    assert problems('intercept: [409, 200, 304, "3xx", "399-401"]') == [
        f"routes[0].intercept: 200 {hint}", f"routes[0].intercept: 304 {hint}", f'routes[0].intercept: "3xx" {hint}',
        f'routes[0].intercept: "399-401" {hint}']


def test_every_status_that_is_not_one_is_named():
    # Only the first was, though a check reports every problem at once.
    assert problems("intercept: [409, 6xx, 99, 1000]") == [
        f'routes[0].intercept: "6xx" {STATUS_HINT}', f"routes[0].intercept: 99 {STATUS_HINT}",
        f"routes[0].intercept: 1000 {STATUS_HINT}"]


def test_defaults_problems_name_defaults():
    assert problems(defaults="errors: [{status: 6xx}]\nformat: xml\n") == [
        'defaults.format: "xml" must be one of auto, json, html, text, passthrough',
        f'defaults.errors[0].status: "6xx" {STATUS_HINT}',
    ]


def test_every_problem_reported_at_once():
    found = problems("""
        intercept: 6xx
        errors:
          - status: 409
            detail_pointer: nope
          - status: 500
            rewrite_status: 200
        success_false: {status: 200}
    """)
    assert found == [
        f'routes[0].intercept: "6xx" {STATUS_HINT}',
        f'routes[0].errors[0].detail_pointer: "nope" {POINTER_HINT}',
        f"routes[0].errors[1].rewrite_status: 200 {ERROR_STATUS_HINT}",
        f"routes[0].success_false.status: 200 {ERROR_STATUS_HINT}",
    ]
