"""`${VAR}` in config values: expansion, escapes, types, and problems that name the variable and the path."""

from __future__ import annotations

import pytest

from proxy.config.loader import ConfigError, from_text, load_from_env
from proxy.config.parse import parse_yaml
from proxy.config.variables import VariableProblem, expand, expand_text

ENV = {"HOST": "10.0.0.5", "PORT": "9000", "EMPTY": "", "REF": "${HOST}", "COLON": "a: b"}


@pytest.mark.parametrize(
    "text, expanded",
    [
        pytest.param("${HOST}", "10.0.0.5", id="whole"),
        pytest.param("http://${HOST}:${PORT}/v2", "http://10.0.0.5:9000/v2", id="inside-text"),
        pytest.param("${MISSING:-127.0.0.1}", "127.0.0.1", id="default-when-unset"),
        pytest.param("${EMPTY:-fallback}", "fallback", id="default-when-empty"),
        pytest.param("${HOST:-fallback}", "10.0.0.5", id="set-beats-default"),
        pytest.param("${EMPTY}", "", id="empty-without-default"),
        pytest.param("${MISSING:-}", "", id="empty-default"),
        pytest.param("${MISSING:-a:-b c}", "a:-b c", id="default-is-text-to-the-brace"),
        pytest.param("$${HOST}", "${HOST}", id="escape"),
        pytest.param("$${HOST} is ${HOST}", "${HOST} is 10.0.0.5", id="escape-and-reference"),
        pytest.param("${REF}", "${HOST}", id="value-not-expanded-again"),
        pytest.param("^/reports/[0-9]+$", "^/reports/[0-9]+$", id="dollar-alone"),
        pytest.param("$$ and $HOST and {HOST}", "$$ and $HOST and {HOST}", id="no-brace-after-dollar"),
        pytest.param("${HOST}${PORT}", "10.0.0.59000", id="adjacent"),
    ],
)
def test_expand_text(text, expanded):
    assert expand_text(text, ENV) == expanded


@pytest.mark.parametrize(
    "text, problem",
    [
        pytest.param("${MISSING}", "${MISSING} is not set", id="unset"),
        pytest.param("x-${MISSING}-y", "${MISSING} is not set", id="unset-inside-text"),
        pytest.param("${}", '"${}" is not a variable reference (${NAME} or ${NAME:-default}; $${ is a literal ${)',
                     id="empty-name"),
        pytest.param("${1A}", '"${1A}" is not a variable reference (${NAME} or ${NAME:-default}; $${ is a literal ${)',
                     id="starts-with-digit"),
        pytest.param("${A B}", '"${A B}" is not a variable reference (${NAME} or ${NAME:-default}; $${ is a literal ${)',
                     id="space"),
        pytest.param("${A-x}", '"${A-x}" is not a variable reference (${NAME} or ${NAME:-default}; $${ is a literal ${)',
                     id="dash-without-colon"),
        pytest.param("${A:-${B}}", '"${A:-${B}" is not a variable reference (${NAME} or ${NAME:-default}; '
                     "$${ is a literal ${)", id="nested"),
        pytest.param("${HOST", '"${HOST" has no closing } ($${ is a literal ${)', id="unclosed"),
    ],
)
def test_expand_text_problems(text, problem):
    with pytest.raises(VariableProblem) as caught:
        expand_text(text, ENV)
    assert str(caught.value) == problem


@pytest.mark.parametrize(
    "yaml_text, value",
    [
        pytest.param("x: ${PORT}", 9000, id="unquoted-number"),
        pytest.param("x: '${PORT}'", "9000", id="single-quoted-stays-text"),
        pytest.param('x: "${PORT}"', "9000", id="double-quoted-stays-text"),
        pytest.param("x: ${ON}", True, id="unquoted-boolean"),
        pytest.param("x: ${NULL}", None, id="unquoted-null"),
        pytest.param("x: ${MISSING:-1.5}", 1.5, id="default-typed-too"),
        pytest.param("x: ${MISSING:-}", "", id="empty-stays-text"),
        pytest.param("x: :${PORT}", ":9000", id="text-around-stays-text"),
        pytest.param("x: ${COLON}", "a: b", id="no-keys-from-a-value"),
        pytest.param("x: ${LIST}", "[1, {a: b}]", id="no-lists-from-a-value"),
        pytest.param("x: ${HUGE}", "9" * 5000, id="integer-past-the-digit-limit-stays-text"),
        pytest.param("x:\n  - ${PORT}\n  - ${HOST}", [9000, "10.0.0.5"], id="in-a-block-list"),
        pytest.param('x: ["${PORT}"]', ["9000"], id="quoted-in-a-flow-list"),
    ],
)
def test_values_after_parsing(yaml_text, value):
    env = {**ENV, "ON": "true", "NULL": "null", "LIST": "[1, {a: b}]", "HUGE": "9" * 5000}
    data, problems = expand(parse_yaml(yaml_text), env)
    assert problems == []
    assert data == {"x": value} and type(data["x"]) is type(value)
    if isinstance(value, list):
        assert [type(item) for item in data["x"]] == [type(item) for item in value]


def test_every_problem_names_its_path():
    data = parse_yaml("""
listen: ${LISTEN}
upstreams:
  app: {url: "${APP_URL}/v2"}
routes:
  - errors: [{status: 409}, {status: 500, title: "${TITLE:-Oops} ${NOPE}"}]
""")
    _, problems = expand(data, {})
    assert problems == [
        "listen: ${LISTEN} is not set",
        "upstreams.app.url: ${APP_URL} is not set",
        "routes[0].errors[1].title: ${NOPE} is not set",
    ]


def test_keys_and_json_templates_are_left_as_written():
    data = parse_yaml("""
${HOST}: ${PORT}
defaults:
  json_style: custom
  json_template:
    code: ${status}
    msg: "${title}: $${x}"
    n: ["${detail}"]
routes:
  - json_template: {a: "${instance}"}
""")
    expanded, problems = expand(data, {**ENV, "status": "from the environment"})
    assert problems == []
    assert expanded == {
        "${HOST}": 9000,
        "defaults": {"json_style": "custom", "json_template": {"code": "${status}", "msg": "${title}: $${x}",
                                                                "n": ["${detail}"]}},
        "routes": [{"json_template": {"a": "${instance}"}}],
    }
    # Plain str all through: no parser marking is left for the renderer to meet.
    assert {type(key) for key in expanded} == {str}
    assert type(expanded["defaults"]["json_template"]["code"]) is str


CONFIG = """
listen: ${LISTEN:-127.0.0.1:8080}
watch_config: ${WATCH:-false}
upstreams:
  app:
    url: ${APP_URL}
    retries: ${RETRIES:-2}
defaults: {json_style: custom, json_template: {code: "${status}"}}
routes:
  - {match: {path_prefix: /}, upstream: app}
"""


def test_a_config_serves_each_environment():
    staging = from_text(CONFIG, "c.yaml", {"APP_URL": "http://10.0.0.5:3000", "WATCH": "true", "RETRIES": "4"})
    assert str(staging.upstreams["app"].url) == "http://10.0.0.5:3000"
    assert staging.ops.watch_config is True and staging.upstreams["app"].retries == 4
    assert str(staging.listen) == "127.0.0.1:8080"
    assert dict(staging.errors.json_template) == {"code": "${status}"}


def test_an_unset_variable_is_a_config_problem_with_the_source():
    with pytest.raises(ConfigError) as caught:
        from_text(CONFIG, "c.yaml", {})
    assert (caught.value.source, caught.value.problems) == ("c.yaml", ["upstreams.app.url: ${APP_URL} is not set"])


def test_a_bad_value_from_a_variable_is_checked_like_any_other():
    with pytest.raises(ConfigError) as caught:
        from_text(CONFIG, "c.yaml", {"APP_URL": "http://10.0.0.5:3000", "RETRIES": "many"})
    assert caught.value.problems == ['upstreams.app.retries: "many" is not a whole number']


def test_load_from_env_expands_from_the_mapping_it_is_given(tmp_path, monkeypatch):
    # A reload reads the variables errorproxy started with (config.source.Source.env), not os.environ.
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("APP_URL", "http://127.0.0.1:1")
    settings = load_from_env({"ERRORPROXY_CONFIG": str(path), "APP_URL": "http://127.0.0.1:2"})
    assert str(settings.upstreams["app"].url) == "http://127.0.0.1:2"
