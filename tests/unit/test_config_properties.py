"""The config loader on mutated YAML: valid settings or a clean ConfigError, never a traceback.

Every example config (config/*.yaml), the embedded one and `RICH` (most keys of every section)
are mutated two ways, then loaded with `from_text`:

- as text: lines deleted, duplicated, swapped, re-indented, characters and YAML syntax
  inserted, values replaced, the file truncated;
- as data: read with yaml.safe_load, then values at random paths replaced by generated values
  of every YAML type, keys deleted or added, subtrees shared (aliases) or nested deeply,
  and dumped back.

The outcome is either `Settings` or a `ConfigError` whose every problem is one line, of
bounded length, that starts with where it is: a key path, `(top level)` or a YAML position.
`errorproxy check` runs on a few mutated files too: exit status 0 or 1, never a traceback.

Every test is bounded and derandomized, so the file runs in a few seconds and a failure
shows the same example on every run.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy import cli
from proxy.config.loader import _TOP_KEYS as TOP_KEYS, ConfigError, from_text
from proxy.config.parse import YAMLProblem, parse_yaml
from proxy.config.values import key_path
from proxy.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

RICH = """\
listen: 127.0.0.1:8080
admin: 127.0.0.1:9901
access_log: json
watch_config: false
readiness: {check_upstreams: true}
trusted_proxies: [10.0.0.0/8, "::1"]
allow_underscores_in_headers: false
server:
  header_timeout: 10s
  keepalive_timeout: 75s
  max_line_size: 8KiB
  max_headers: 100
  lingering_time: 5s
  shutdown_timeout: 30s
  stop_delay: 0s
  body_timeout: 60s
  send_timeout: 60s
upstreams:
  app:
    targets: [http://127.0.0.1:9000, http://127.0.0.1:9001/v2]
    connect_timeout: 2s
    read_timeout: 30s
    max_connections: 64
    idle_timeout: 60s
    max_line_size: 16KiB
    eject_for: 10s
    max_eject_for: 60s
    eject_after: 5
    health_check: {path: /health, interval: 5s, timeout: 1s, expect: [200, "204-299"]}
    retries: 2
    retry_on: [connect, reset, 502, 503, 504]
    retry_backoff: 50ms
    retry_budget: 20%
    retry_budget_min: 3
    max_requests: 1000
    max_pending: 1024
  secure:
    url: https://api.example.com/base
    tls: {verify: true, server_name: api.internal.example, min_version: "1.3"}
  local: unix:/run/app.sock
messages:
  de: {error.maintenance: Wartung}
brand:
  name: Acme
  logo_url: https://cdn.example.com/logo.svg
  support_url: https://status.example.com
  accent_color: "#0b5fff"
  footer_text: Acme Corp
  lang: en
defaults:
  host_header: upstream
  max_body_size: 10MiB
  intercept: [409, "5xx", "420-429"]
  origins: both
  format: auto
  json_style: custom
  json_template: {ok: false, code: "${status}", message: "${title}: ${detail}", n: [1, 2.5, null]}
  expose_upstream_detail: true
  field_errors: true
  max_error_body: 64KiB
  cors:
    allow_origins: ["https://app.example.com", "https://*.example.com"]
    allow_credentials: true
    expose_headers: [X-Trace-Id]
    preflight: proxy
    max_age: 10m
    allow_methods: [GET, POST]
    allow_headers: null
  maintenance: {enabled: false, retry_after: 5m, message: Back soon, allow: [10.20.0.0/16], file: null}
  concurrency: {etag: body, require_if_match: true, methods: [PUT, PATCH, DELETE], on_mismatch: 412,
                max_body: 1MiB, lock: local, lock_timeout: 5s, lock_lease: 10s, on_lock_unavailable: fail,
                key: path, max_waiters: 100, fencing_header: X-Fencing-Token}
routes:
  - name: api-writes
    match: {host: [api.example.com, "*.example.com"], path_prefix: /api/, methods: [PUT, PATCH, POST]}
    upstream: app
    strip_prefix: /api
    template: site_error.html
    success_false: {status: 422, max_body: 64KiB, pointer: /success}
    errors:
      - status: [409, "5xx"]
        body_matches: "OptimisticLock|duplicate key"
        json_equals: {/error/code: CONFLICT}
        header_matches: {X-Error-Kind: "^lock$"}
        type: https://errors.example.com/edit-conflict
        title: Edit conflict
        detail: Reload the page and try again.
        detail_pointer: /error/message
        extensions: {current_version: /currentVersion}
        rewrite_status: 409
  - name: reports
    match: {path_regex: "^/reports/[0-9]+$", methods: [GET]}
    upstream: secure
    concurrency: {etag: "pointer:/version", lock: "redis://cache:6379/0", key: "regex:^(/documents/\\\\d+)"}
    maintenance: true
    cors: null
  - match: {path_prefix: /}
    upstream: local
    format: html
    json_style: envelope
"""


def _seeds() -> dict[str, str]:
    seeds = {path.name: path.read_text() for path in sorted((ROOT / "config").glob("*.yaml"))}
    # branded.yaml's templates_dir is relative to the directory errorproxy starts in: the repository.
    seeds["branded.yaml"] = seeds["branded.yaml"].replace("templates_dir: config/", f"templates_dir: {ROOT}/config/")
    seeds["embedded.yaml"] = resources.files("proxy.config").joinpath("embedded.yaml").read_text()
    seeds["rich.yaml"] = RICH
    return seeds


SEEDS = _seeds()
SEED_NAMES = sorted(SEEDS)
SEED_DATA = {name: yaml.safe_load(text) for name, text in SEEDS.items()}
ENV = {"APP_URL": "http://127.0.0.1:9000", "N": "3", "EMPTY": "", "LINES": "a\nb", "FLOW": "[1, {a: b}]",
       "BIG": "9" * 500, "YES": "true"}
MAX_PROBLEM = 600  # characters in one problem line: a path (200 at most), a value quoted (120), a sentence
POSITION = re.compile(r"(line \d+, column \d+|character \d+): ")


def bounded(examples: int) -> settings:
    # No deadline: one load of the largest seed takes ~15ms, and a loaded machine may take ten times that.
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_loads_cleanly(text: str) -> Settings | ConfigError:
    """`from_text(text)`: Settings, or a ConfigError whose problems are bounded lines that say where."""
    try:
        return from_text(text, "fuzz.yaml", env=ENV)
    except ConfigError as exc:
        assert exc.source == "fuzz.yaml"
        assert exc.problems and all(isinstance(problem, str) for problem in exc.problems)
        places = _places(text)
        for problem in exc.problems:
            assert len(problem.splitlines()) == 1, problem
            assert len(problem) <= MAX_PROBLEM, problem[:300]
            assert problem.startswith(places) or POSITION.match(problem), problem[:300]
        return exc


def _places(text: str) -> tuple[str, ...]:
    """How a problem line may begin for this document: a top-level key's path, or the top level."""
    places = ["(top level): ", "... and "] + [f"{key}{end}" for key in TOP_KEYS for end in (": ", ".", "[")]
    try:
        data = parse_yaml(text)
    except (YAMLProblem, RecursionError):
        return tuple(places)
    if isinstance(data, dict):
        for key in data:
            name = key_path("", key)  # quoted when it does not read plainly on one line
            places += [f"{name}: ", f"{name}.", f"{name}["]
    return tuple(places)


@pytest.mark.parametrize("seed", SEED_NAMES)
def test_every_seed_loads(seed: str) -> None:
    # A mutation, not the seed, is what makes a file fail.
    assert isinstance(assert_loads_cleanly(SEEDS[seed]), Settings)


# --- Text mutations -------------------------------------------------------------------------------

SYNTAX = [
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "*nowhere", "!!binary ", "!!set ", "!!str ",
    "!!python/object:os.system ", "!custom ", "<<: *a", "? ", "|", ">-", "'", '"', "#", "%YAML 1.1\n", "---\n",
    "...\n", "\t", "\n", "\r\n", "\x00", "\x07", "\x85", "\u2028", "\ufeff", "\udcff", "é", "😀", "\\", "${", "${N}",
    "${UNSET}", "$${", "${1A}", "~", "null", "yes", "on", ".nan", "-.inf", "1e400", "0x1F", "0o17", "2001-02-30",
    "2024-01-01", "12:30:00", "-1", "1" * 5000, "[" * 150, "{a: " * 120, "a" * 10_000, "&x [*x]", "&x {a: *x}",
]
fragments = st.one_of(
    st.sampled_from(SYNTAX),
    st.text(alphabet=":-[]{},&*!|>'\"%@`#?\t\n $~.0123456789abc", max_size=8),
    st.text(max_size=8),
)
positions = st.integers(0, 10**6)  # taken modulo the line count or length
text_edits = st.one_of(
    st.tuples(st.just("delete"), positions),
    st.tuples(st.just("duplicate"), positions),
    st.tuples(st.just("swap"), positions, positions),
    st.tuples(st.just("indent"), positions, st.sampled_from(["", " ", "  ", "   ", "      ", "\t", " \t", "  - "])),
    st.tuples(st.just("insert"), positions, positions, fragments),
    st.tuples(st.just("value"), positions, fragments),
    st.tuples(st.just("truncate"), positions),
)


def edit_text(text: str, edits: list[tuple]) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for edit in edits:
        kind, at = edit[0], edit[1] % len(lines)
        if kind == "delete" and len(lines) > 1:
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = edit[2] % len(lines)
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "indent":
            lines[at] = edit[2] + lines[at].lstrip(" \t")
        elif kind == "insert":
            line = lines[at]
            column = edit[2] % (len(line) + 1)
            lines[at] = line[:column] + edit[3] + line[column:]
        elif kind == "value":
            key, colon, _ = lines[at].partition(": ")
            if colon:
                lines[at] = f"{key}: {edit[2]}\n"
        elif kind == "truncate":
            whole = "".join(lines)
            lines = [whole[:edit[1] % (len(whole) + 1)]]
    return "".join(lines)


@bounded(120)
@given(st.sampled_from(SEED_NAMES), st.lists(text_edits, min_size=1, max_size=6))
@example("embedded.yaml", [("value", 5, "a\nb")])
@example("rich.yaml", [("truncate", 3000)])
@example("legacy.yaml", [("insert", 40, 0, "\x00")])
@example("embedded.yaml", [("value", 5, "{a: " * 120)])
# Found by this test: NEL, U+2028 and C1 controls in a value were quoted raw, splitting the line.
@example("embedded.yaml", [("value", 2, '"a\\x85b\\u2028c\\x9b"')])  # listen: "a\x85b..."
def test_mutated_text_loads_or_fails_cleanly(seed: str, edits: list[tuple]) -> None:
    assert_loads_cleanly(edit_text(SEEDS[seed], edits))


@pytest.mark.parametrize("text", [
    pytest.param("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)), id="billion-laughs"),
    pytest.param("upstreams:\n  app:\n    url: http://a\n    connect_timeout: " + "9" * 401 + "\nroutes: []\n", id="401-digits"),
    pytest.param("routes:\n" + "  " * 3000 + "- x\n", id="deep-indent"),
    pytest.param("routes: " + "[" * 3000 + "]" * 3000 + "\n", id="deep-flow"),
    pytest.param("upstreams: {app: http://a}\nroutes: [{upstream: app, match: {path_prefix: /}, "
                 "json_template: !!binary aGk=, json_style: custom}]\n", id="binary-template"),
    pytest.param("", id="empty"),
    pytest.param("---\n---\n", id="two-documents"),
])
def test_known_hostile_files_fail_cleanly(text: str) -> None:
    assert isinstance(assert_loads_cleanly(text), ConfigError)


# --- Data mutations -------------------------------------------------------------------------------

KNOWN_WORDS = [
    "listen", "upstreams", "routes", "defaults", "server", "brand", "url", "targets", "match", "path_prefix",
    "errors", "status", "intercept", "json_template", "tls", "cors", "maintenance", "concurrency", "<<",
]
STRINGS = [
    "", " ", "x" * 5000, "a\nb", "\t", "${N}", "${BIG}", "${LINES}", "${FLOW}", "${UNSET}", "${N:-x}", "$${N}",
    "${", "${1A}", "10.0.0.0/33", "::1", "http://", "https://[::1", "unix:", "unix:/", "redis://", "rediss://:x@",
    "regex:(", "pointer:/", "header:", "5xx", "6xx", "1m30s", "-1s", "64KiB", "2TiB", "1e400", "nan", "20%",
    "200%", "-5%", "#zzz", "*.", "/api/", "^(", "a{99999999999}", "(" * 500, "é" * 50, "😀", "\u2028", "\x85",
    "\x1b[31m", "\udcff", "0660", "0999", "1.3", "0.0.0.0:99999", "localhost:0",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 2000), st.integers(-(10**400), 10**400),
    st.sampled_from([10**4000, -(10**4000), 2**63, 2**64, -1, 0, 65536, 10**6 + 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0, 0.5, 1e-300]),
    st.text(max_size=20), st.sampled_from(STRINGS), st.sampled_from(KNOWN_WORDS),
    st.dates(), st.datetimes(timezones=st.sampled_from([None, datetime.timezone.utc])),
    st.binary(max_size=8), st.sets(st.integers(0, 9), max_size=3),
)
keys = st.one_of(st.sampled_from(KNOWN_WORDS), st.text(max_size=12), st.integers(), st.none(), st.booleans(),
                 st.sampled_from(["a\nb", "k" * 500, "a.b", "x[0]", "a: b", "\u2028"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)),
                      max_leaves=8)
data_edits = st.one_of(
    st.tuples(st.just("replace"), positions, values),
    st.tuples(st.just("delete"), positions),
    st.tuples(st.just("add"), positions, keys, values),
    st.tuples(st.just("share"), positions, positions),
    st.tuples(st.just("nest"), positions, st.integers(1, 130), st.booleans()),
)
Path_ = tuple  # a path into the document: keys and indexes
MAX_NESTING = 130  # the parser refuses more than 100 levels; yaml.safe_dump recurses once a level


def _paths(node: Any, path: Path_ = ()) -> list[Path_]:
    out = [path]
    if len(path) > MAX_NESTING:  # deeper paths exist only inside a nest: they add nothing
        return out
    if isinstance(node, dict):
        for key, item in node.items():
            out += _paths(item, path + (key,))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            out += _paths(item, path + (index,))
    return out


def _get(node: Any, path: Path_) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(document: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _get(document, path[:-1])[path[-1]] = value
    return document


def edit_data(document: Any, edits: list[tuple]) -> Any:
    for edit in edits:
        paths = _paths(document)
        kind, path = edit[0], paths[edit[1] % len(paths)]
        if kind == "replace":
            document = _set(document, path, edit[2])
        elif kind == "delete" and path:
            parent = _get(document, path[:-1])
            del parent[path[-1]]
        elif kind == "add":
            target = _get(document, path)
            if isinstance(target, dict):
                target[edit[2]] = edit[3]
            elif isinstance(target, list):
                target.append(edit[3])
        elif kind == "share":
            source = paths[edit[2] % len(paths)]
            if source[:len(path)] != path and path[:len(source)] != source:  # no cycles: YAML refuses them anyway
                document = _set(document, path, _get(document, source))
        elif kind == "nest":
            value = _get(document, path)
            for _ in range(min(edit[2], MAX_NESTING - len(path))):  # past the parser's limit, not past Python's
                value = [value] if edit[3] else {"nested" + "-" * 52: value}
            document = _set(document, path, value)
    return document


def _dump(document: Any, flow: bool | None) -> str:
    # yaml.safe_dump writes every type in `scalars` (bytes as !!binary, sets as !!set, dates)
    # and an object met twice as an anchor and its aliases.
    return yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False, width=10**6)


@bounded(150)
@given(st.sampled_from(SEED_NAMES), st.lists(data_edits, min_size=1, max_size=5), st.sampled_from([False, True, None]))
# Found by this test: a key or value holding a line break, NEL or U+2028 was written raw
# into its problem, splitting the line; the names listed after "defined:" too, unbounded.
@example("embedded.yaml", [("add", 0, "\r", None)], False)  # a top-level key "\r"
@example("embedded.yaml", [("add", 0, "\u2028", None)], False)
@example("embedded.yaml", [("delete", 3), ("add", 2, "a\nb", None)], False)  # upstreams.a\nb, "defined: a\nb"
@example("embedded.yaml", [("add", 2, "k" * 5000, None)], False)  # upstreams.kkkk...
# A deep path: 100 levels of keys, each 59 characters, made a problem line of 6000.
@example("rich.yaml", [("replace", 2, "${"), ("nest", 2, 95, False)], None)
def test_mutated_data_loads_or_fails_cleanly(seed: str, edits: list[tuple], flow: bool | None) -> None:
    document = edit_data(copy.deepcopy(SEED_DATA[seed]), edits)
    assert_loads_cleanly(_dump(document, flow))


# --- errorproxy check -----------------------------------------------------------------------------

def run_check(path: str) -> tuple[int, str]:
    """`errorproxy check --config PATH` in this process: its exit status and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        cli.main(["check", "--config", path])
    return exited.value.code, out.getvalue() + err.getvalue()


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(SEED_NAMES), st.lists(data_edits, max_size=3), st.lists(text_edits, max_size=2),
       st.sampled_from([None, b"\xff", b"\xc3", b"\x00"]))
def test_check_command_exits_0_or_1_without_a_traceback(seed: str, in_data: list[tuple], in_text: list[tuple],
                                                         raw: bytes | None) -> None:
    text = edit_text(_dump(edit_data(copy.deepcopy(SEED_DATA[seed]), in_data), None), in_text)
    data = text.encode("utf-8", "surrogatepass")
    if raw is not None:  # not UTF-8 text: the file's own problem
        data = data[:len(data) // 2] + raw + data[len(data) // 2:]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mutated.yaml")
        with open(path, "wb") as file:
            file.write(data)
        status, output = run_check(path)
    assert status in (0, 1), output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert "cannot be loaded" not in output, output[-2000:]  # the CLI's catch-all: the loader raised something else
