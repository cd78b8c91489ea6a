"""The command line as a user runs it: `python -m proxy check | run | demo` in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import config_yaml


# What this module tests lies past the request parser: it runs once, on aiohttp's
# C parser (the default), not again on the pure-Python one.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _env() -> dict[str, str]:
    """This environment without ERRORPROXY_* variables, so only the test's flags count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORPROXY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def errorproxy(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT,
    )


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 a moment ago (held together, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


@contextlib.contextmanager
def busy_port():
    """A port on 127.0.0.1 with a listener on it for the duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


GOOD = """\
listen: 127.0.0.1:7000
upstreams:
  legacy: {url: "http://127.0.0.1:9000", read_timeout: 30s}
routes:
  - name: api
    match: {path_prefix: /api/, methods: [GET, PUT]}
    upstream: legacy
    strip_prefix: /api
  - name: site
    match: {path_prefix: /}
    upstream: legacy
"""

BAD = """\
listen: 127.0.0.1
upstreams:
  legacy: {url: "http://127.0.0.1:9000", read_timeout: 3 parsecs}
routes:
  - name: api
    match: {path_prefix: /api/, path_regex: "(["}
    upstream: legasy
  - name: api
    match: {path_prefix: /}
    upstream: legacy
"""


def test_check_a_good_config_prints_the_summary(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = errorproxy("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: ok"
    assert "listen 127.0.0.1:7000" in lines
    assert any(line.split()[:2] == ["legacy", "http://127.0.0.1:9000"] and "read 30s" in line for line in lines)
    routes = lines[lines.index("routes (first match wins):") + 1:]
    assert [line.split()[:2] for line in routes] == [["1.", "api"], ["2.", "site"]]
    assert "strip /api" in routes[0] and "methods=GET,PUT" in routes[0]


def test_check_a_bad_config_prints_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = errorproxy("check", "--config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{path}: listen: "127.0.0.1" is not an address (HOST:PORT, e.g. 0.0.0.0:8080)',
        f'{path}: upstreams.legacy.read_timeout: "3 parsecs" is not a duration',
        f'{path}: routes[0].match.path_regex: "([" is not a regular expression (unterminated character set at position 1)',
        f'{path}: routes[0].upstream: "legasy" is not a defined upstream (defined: legacy)',
        f'{path}: routes[1].name: "api" is used by an earlier route',
    ]


def test_check_into_a_closed_pipe_is_quiet(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    # As `errorproxy check | head -0`: the reader is gone before the summary is written.
    process = subprocess.Popen([sys.executable, "-m", "proxy", "check", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    process.stdout.close()
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 0 and stderr == ""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("routes:\n  - name: a\n   upstream: b\n",
                     "line 3, column 4: not valid YAML (expected <block end>, but found '<block mapping start>')",
                     id="yaml-syntax"),
        pytest.param("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
                     'line 2, column 1: not valid YAML (found duplicate key "listen")', id="duplicate-key"),
        pytest.param(None, "cannot read the file: No such file or directory", id="missing-file"),
    ],
)
def test_check_reports_unreadable_configs_without_a_traceback(tmp_path, content, problem):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    result = errorproxy("check", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}: {problem}"]


LAUGHS = "".join(
    f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9 if previous else ['"lol"'] * 9) + "]\n"
    for previous, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
) + "listen: *h\nroutes: *h\n"  # 353 bytes that once printed 52 MB of problems


def _with(upstream: str = "http://127.0.0.1:9000", top: str = "") -> str:
    return f"upstreams:\n  legacy: {upstream}\nroutes: [{{match: {{path_prefix: /}}, upstream: legacy}}]\n{top}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(LAUGHS, "not valid YAML (aliases expand the document past 100000 values and characters)",
                     id="billion-laughs"),
        pytest.param(_with(top="brand: " + "[" * 3000 + "]" * 3000), "not valid YAML (nested deeper than 100 levels)",
                     id="deep-nesting"),
        pytest.param(_with("{url: 'http://127.0.0.1:9000', connect_timeout: " + "1" * 401 + "}"),
                     "… must be at most 720h (30 days)", id="huge-number"),
        pytest.param(_with(top="listen: " + "9" * 5000), "value has 5000 digits)", id="number-past-int-limit"),
        pytest.param(bytes(range(256)) * 64, "cannot read the file: not UTF-8 text (byte 128)", id="binary-garbage"),
        pytest.param("\x00\x01\x02 garbage", "character 1: not valid YAML (unacceptable character #x0000)",
                     id="control-characters"),
        pytest.param(_with(top="templates_dir: {templates}"), "409.html: not UTF-8 text (byte 3)", id="non-utf8-template"),
        pytest.param(_with(top="defaults: {json_style: custom, json_template: {data: !!binary aGk=}}"),
                     "is binary data (!!binary), not a JSON value", id="binary-json-template"),
    ],
)
def test_check_a_hostile_file_is_a_short_message(tmp_path, content, problem):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "409.html").write_bytes(b"<p>\xff\xfe caf\xe9</p>")
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("{templates}", str(templates)))
    started = time.monotonic()
    result = errorproxy("check", "--config", str(path), timeout=20)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr) < 2048, result.stderr[:4096]
    assert result.stderr.startswith(f"{path}: ") and result.stderr.rstrip("\n").endswith(problem), result.stderr
    # The interpreter and aiohttp start in about half a second; the check itself takes milliseconds.
    assert elapsed < 5


# Every example in config/ (tests/unit/test_loader.py checks that the documented ones are there).
EXAMPLES = sorted(path.name for path in (ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_check_the_example_configs(example):
    result = errorproxy("check", "--config", f"config/{example}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"config/{example}: ok\n")


def test_the_branded_example_renders_its_own_409_page():
    result = errorproxy("preview", "409", "--accept", "text/html", "--config", "config/branded.yaml")
    assert result.returncode == 0, result.stderr
    page = result.stdout
    # config/templates/409.html, in place of the built-in 409.html ...
    assert "<h1>Someone saved this document before you</h1>" in page
    assert "so Acme Documents kept theirs." in page
    assert "Someone else changed this" not in page
    # ... on the built-in base.html, with the example's brand.
    assert page.startswith("<!doctype html>\n") and "<title>409 Conflict · Acme Documents</title>" in page
    assert "--accent: #c2185b;" in page and '<a href="https://status.example.com">contact support</a>' in page


def test_a_relative_templates_dir_is_found_from_the_working_directory(tmp_path):
    """As config/branded.yaml says: relative to where errorproxy starts, not to the config file."""
    config = ROOT / "config" / "branded.yaml"
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=30, env=_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{config}: template config/templates: templates_dir is not a directory"]


def test_run_without_an_upstream_says_how_to_give_one():
    result = errorproxy("run", timeout=20)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["<embedded>: no upstream: pass --upstream URL or set ERRORPROXY_UPSTREAM"]


def test_run_on_a_busy_port_fails_in_one_line():
    with busy_port() as port:
        result = errorproxy("run", "--upstream", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}", timeout=20)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"errorproxy run: cannot listen on 127.0.0.1:{port}: address already in use"


@pytest.mark.parametrize("which", ["proxy", "upstream"])
def test_demo_on_a_busy_port_fails_in_one_line(which):
    [free] = free_ports(1)
    with busy_port() as port:
        ports = {"proxy": port, "upstream": free} if which == "proxy" else {"proxy": free, "upstream": port}
        result = errorproxy("demo", "--listen", f"127.0.0.1:{ports['proxy']}",
                            "--upstream-listen", f"127.0.0.1:{ports['upstream']}", timeout=20)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("errorproxy demo: cannot listen: ")
    assert f"('127.0.0.1', {port})" in last and last.endswith("address already in use")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--upstream-listen", "9000"),
                     'errorproxy demo: --upstream-listen: "9000" is not HOST:PORT (e.g. 127.0.0.1:9000)', id="upstream"),
        pytest.param(("--listen", "localhost"),
                     'errorproxy demo: --listen: "localhost" is not HOST:PORT (e.g. 127.0.0.1:9000)', id="listen"),
    ],
)
def test_demo_with_a_bad_address(args, message):
    result = errorproxy("demo", *args, timeout=20)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [message]


@pytest.fixture
def demo(tmp_path):
    """`python -m proxy demo` on free ports; yields (proxy URL, legacy URL, process, paths)."""
    proxy_port, upstream_port = free_ports(2)
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "demo",
             "--listen", f"127.0.0.1:{proxy_port}", "--upstream-listen", f"127.0.0.1:{upstream_port}"],
            stdout=stdout, stderr=stderr, env=_env(), cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 15
        while "Ctrl-C stops both." not in out.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"demo did not start (exit {process.returncode}):\n{err.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{upstream_port}", process, out, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_demo_serves_through_the_proxy_and_stops_on_sigterm(demo):
    proxy, legacy, process, out, err = demo
    banner = out.read_text()
    assert f"errorproxy      {proxy}" in banner and f"legacy service  {legacy}" in banner
    for endpoint in ("/hello", "/documents/42 -X PUT", "/crash", "'/download?mb=", "/echo", "'/slow?seconds="):
        assert f"curl -i {proxy}{endpoint}" in banner or f"'{proxy}{endpoint.lstrip(chr(39))}" in banner, endpoint

    async with aiohttp.ClientSession() as client:
        async with client.get(f"{proxy}/hello") as response:
            assert response.status == 200
            assert (await response.json())["message"].startswith("Hello")

        async with client.get(f"{proxy}/documents/42") as response:
            assert response.status == 200
            assert response.headers["ETag"] == '"v7-doc"'

        # Banner: "409 as an RFC 9457 problem: the service's own message as detail, its ETag kept".
        async with client.put(f"{proxy}/documents/42", json={"title": "Draft 2", "version": 6}) as response:
            assert response.status == 409
            assert response.headers["ETag"] == '"v7-doc"'
            assert response.content_type == "application/problem+json"
            problem = json.loads(await response.read())
            assert problem["detail"] == "Version conflict: document 42 was modified"
            assert problem["current_etag"] == '"v7-doc"'
        async with client.put(f"{legacy}/documents/42", data=b"{}") as response:
            assert response.status == 409  # the service itself: its own shape
            assert (await response.json())["error"]["message"] == "Version conflict: document 42 was modified"

        # Banner: "405 problem, the service's Allow header kept".
        async with client.delete(f"{proxy}/documents/42") as response:
            assert response.status == 405
            assert set(response.headers["Allow"].split(",")) >= {"GET", "PUT"}

        # Banner: "500 problem; the stack trace is logged with the request id, never sent".
        async with client.get(f"{legacy}/crash") as response:
            assert response.status == 500
            assert "Traceback (most recent call last)" in await response.text()
        negotiated = (("*/*", "application/problem+json"), ("application/json", "application/json"),
                      ("text/html", "text/html"))
        for accept, media in negotiated:
            async with client.get(f"{proxy}/crash", headers={"Accept": accept}) as response:
                assert response.status == 500
                assert response.content_type == media
                body = await response.text()
                assert "Traceback" not in body and "psycopg2" not in body and "/srv/" not in body

        async with client.get(f"{proxy}/download", params={"mb": "1"}) as response:
            assert response.status == 200
            assert response.content_length == MIB
            received = 0
            async for chunk in response.content.iter_any():
                assert not chunk.strip(b"\0")
                received += len(chunk)
            assert received == MIB

        async with client.get(f"{proxy}/slow", params={"seconds": "0.1"}) as response:
            assert response.status == 200

        async with client.post(f"{proxy}/echo/a%2Fb?x=1", data=b"hello") as response:
            echoed = await response.json()
            assert (echoed["method"], echoed["path"], echoed["body_length"]) == ("POST", "/echo/a%2Fb?x=1", 5)

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    log = err.read_text()
    # The demo's /crash body is logged (quoted, on one line) on purpose; a traceback of our own starts a line.
    assert not [line for line in log.splitlines() if line.startswith("Traceback")], log
    assert "stopped" in log


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("ERRORPROXY_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR"),
    ("ERRORPROXY_LOG_LEVEL", "10", "DEBUG, INFO, WARNING, ERROR"),
    ("ERRORPROXY_LOOP", "bogus", "uvloop, asyncio"),
])
def test_a_bad_log_level_or_loop_is_one_line_naming_it(name, value, allowed):
    # It was a traceback (the log level), or nothing at all (the loop: uvloop, silently).
    result = subprocess.run([sys.executable, "-m", "proxy", "run", "--upstream", "http://127.0.0.1:9"],
                            capture_output=True, text=True, timeout=30, env={**_env(), name: value}, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr == f"errorproxy run: {name}: {value!r} is not one of {allowed}\n"


async def test_an_empty_log_level_counts_as_unset(start_proxy):
    proxy = await start_proxy(config_yaml("http://127.0.0.1:9"), env={"ERRORPROXY_LOG_LEVEL": ""})
    assert " INFO errorproxy: errorproxy listening on " in proxy.log()
