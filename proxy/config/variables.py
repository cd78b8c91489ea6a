"""`${VAR}` in config values: one file for every environment a sidecar runs in.

    upstreams:
      app: {url: "${APP_URL}", read_timeout: "${APP_TIMEOUT:-30s}"}

- `${NAME}` is the variable's value; one that is not set is a problem naming
  it and the value's path: `upstreams.app.url: ${APP_URL} is not set`.
- `${NAME:-default}` is the default when NAME is unset or empty (the shell's
  `:-`); the default is text up to the first `}`, with no `${` inside.
- `$${` is a literal `${`; any other `$` is itself (`path_regex: "^/a$"`).
- Values are expanded, never keys, and never `json_template`, whose `${status}`
  and the like are filled in when an error is rendered (`http.render.fill`).

Expansion happens after the YAML is parsed, on each scalar's text, so a
variable's value is data, never YAML: one holding `a: b` or `[1, 2]` is that
text, it cannot add keys or lists, and a problem's line and path still point
into the file. One unquoted reference alone (`watch_config: ${WATCH}`) is then
read the way YAML reads an unquoted value, so `true`, `3` and `null` become a
boolean, a number and null; anything else stays text, as does every quoted
value (`"${PORT}"`) and every value with text around its reference. The
environment is the process's own: a reload reads the same variables, since
nothing outside can change them once the process runs.

>>> expand({"url": "http://${HOST:-127.0.0.1}:9000", "price": "$${amount}"}, {})
({'url': 'http://127.0.0.1:9000', 'price': '${amount}'}, [])
>>> expand({"upstreams": {"app": {"url": "${APP_URL}"}}}, {})
({'upstreams': {'app': {'url': '${APP_URL}'}}}, ['upstreams.app.url: ${APP_URL} is not set'])
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from .values import key_path, short_path, show

TEMPLATED = frozenset({"json_template"})  # keys whose values are templates of their own, left as written
_REFERENCE = re.compile(r"\$\$\{|\$\{")  # an escape or a reference begins
_INSIDE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_WHOLE = re.compile(r"\$\{[^}]*\}")
_TYPED = frozenset(f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "null"))
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = SafeConstructor()


class Plain(str):
    """The text of an unquoted YAML scalar that holds `${`: made by the parser, gone after `expand`."""

    __slots__ = ()


class VariableProblem(ValueError):
    """A reference that cannot be expanded; the text completes a problem line after the path."""


def expand(data: Any, env: Mapping[str, str]) -> tuple[Any, list[str]]:
    """`data` with every reference in its values expanded from `env`, and a problem line for each failure.

    A value that fails keeps its text, so the problems can be listed together.
    """
    problems: list[str] = []

    def walk(value: Any, path: str, expanding: bool) -> Any:
        if isinstance(value, dict):
            return {str(key) if isinstance(key, Plain) else key:
                    walk(item, key_path(path, key), expanding and key not in TEMPLATED)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{path}[{index}]", expanding) for index, item in enumerate(value)]
        if not isinstance(value, str):
            return value
        if not expanding or "${" not in value:
            return str(value)  # a Plain becomes a str: nothing of the parser's marking outlives expansion
        try:
            text = expand_text(value, env)
        except VariableProblem as exc:
            problems.append(f"{short_path(path) or '(top level)'}: {exc}")
            return str(value)
        return _as_yaml(text) if isinstance(value, Plain) and _WHOLE.fullmatch(value) else text

    return walk(data, "", True), problems


def expand_text(text: str, env: Mapping[str, str]) -> str:
    """`text` with each `${NAME}` and `${NAME:-default}` replaced, and `$${` made `${`.

    >>> expand_text("${A}/${B:-b}/${C:-c}", {"A": "a", "B": "", "C": "see"})
    'a/b/see'
    >>> expand_text("${A:-x}", {"A": "${B}"})  # a value is never expanded again
    '${B}'
    >>> expand_text("${1A}", {})
    Traceback (most recent call last):
    proxy.config.variables.VariableProblem: "${1A}" is not a variable reference (${NAME} or ${NAME:-default}; $${ is a literal ${)
    """
    out = []
    position = 0
    for start in _REFERENCE.finditer(text):
        if start.start() < position:
            continue  # inside a reference already read (a `${` in a default)
        out.append(text[position:start.start()])
        if start.group() == "$${":
            out.append("${")
            position = start.end()
            continue
        close = text.find("}", start.end())
        if close < 0:
            raise VariableProblem(f"{show(text[start.start():], 40)} has no closing }} ($${{ is a literal ${{)")
        reference = text[start.start():close + 1]
        inside = _INSIDE.fullmatch(text, start.end(), close)
        if inside is None or "${" in (inside["default"] or ""):
            raise VariableProblem(f"{show(reference, 60)} is not a variable reference "
                                  "(${NAME} or ${NAME:-default}; $${ is a literal ${)")
        value = env.get(inside["name"])
        if inside["default"] is not None and not value:
            value = inside["default"]
        if value is None:
            raise VariableProblem(f"${{{inside['name']}}} is not set")
        out.append(value)
        position = close + 1
    out.append(text[position:])
    return "".join(out)


def _as_yaml(text: str) -> Any:
    """`text` as YAML reads an unquoted scalar, kept to booleans, numbers and null; else the text.

    >>> _as_yaml("true"), _as_yaml("3"), _as_yaml("null"), _as_yaml("a: b"), _as_yaml("")
    (True, 3, None, 'a: b', '')
    """
    tag = _RESOLVER.resolve(ScalarNode, text, (True, False))
    if tag not in _TYPED or not text:  # an empty default (`${X:-}`) stays "", not null
        return text
    try:
        # The constructor's own function, not construct_object: that one remembers every node it saw.
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, ScalarNode(tag, text))
    except (ValueError, OverflowError):  # an integer past int()'s digit limit: the checks report the text
        return text
