"""accesslog: the per-request record, its JSON and text lines, redaction, and the off switch."""

from __future__ import annotations

import io
import json
import logging
import re
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from yarl import URL

from proxy.observe import accesslog
from proxy.observe.accesslog import AccessLog, Exchange, fields, json_line, loggable_path, rfc3339, text_line
from proxy.core.negotiation import HTML, TEXT
from proxy.core.problem import Problem
from proxy.http.handler import finish_exchange
from proxy.http.passthrough import PassthroughResponse
from proxy.http.render import ProblemResponse, render
from proxy.core.settings import Match, Route, UpstreamSettings

ROUTE = Route(name="api", match=Match(path_prefix="/"), upstream=UpstreamSettings(name="legacy", url=URL("http://b:9")))
NOW = 1_700_000_000.5  # 2023-11-14T22:13:20.500Z
SECRETS = ("s3cr3t-token", "session=abc123", "Bearer xyz789", "hunter2")


def exchange(**changes) -> Exchange:
    """A finished exchange: PUT /documents/42, intercepted 409 rendered as JSON, 250 ms."""
    record = Exchange("rid-1", "PUT", "/documents/42", ROUTE)
    values = dict(upstream_status=409, status=409, intercepted=True, format="json",
                  bytes_in=18, bytes_out=312, seconds=0.25)
    values.update(changes)
    for name, value in values.items():
        setattr(record, name, value)
    return record


def request(method: str = "GET", total_bytes: int = 0) -> SimpleNamespace:
    return SimpleNamespace(method=method, content=SimpleNamespace(total_bytes=total_bytes))


def test_json_line_has_every_field_in_order() -> None:
    line = json_line(exchange(), NOW)
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.250Z",  # when the request arrived: the end minus its duration
        "request_id": "rid-1",
        "trace_id": None,
        "method": "PUT",
        "path": "/documents/42",
        "route": "api",
        "upstream": "legacy",
        "upstream_status": 409,
        "status": 409,
        "intercepted": True,
        "format": "json",
        "bytes_in": 18,
        "bytes_out": 312,
        "duration_ms": 250.0,
    }
    assert list(json.loads(line)) == list(fields(exchange(), NOW))
    assert "\n" not in line


def test_json_line_without_route_or_upstream_answer() -> None:
    record = Exchange("rid-2", "DELETE", "/nowhere", None)
    record.status, record.format, record.bytes_out, record.seconds = 404, "json", 120, 0.001234
    parsed = json.loads(json_line(record, NOW))
    assert (parsed["route"], parsed["upstream"], parsed["upstream_status"], parsed["intercepted"]) == (None, None, None, False)
    assert parsed["duration_ms"] == 1.234


def test_text_line_is_logfmt() -> None:
    assert text_line(exchange(), NOW) == (
        "time=2023-11-14T22:13:20.250Z request_id=rid-1 trace_id=- method=PUT path=/documents/42 route=api "
        "upstream=legacy upstream_status=409 status=409 intercepted=true format=json "
        "bytes_in=18 bytes_out=312 duration_ms=250.0"
    )


def test_trace_id_in_both_lines() -> None:
    record = Exchange("rid-1", "GET", "/x", ROUTE, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert json.loads(json_line(record, NOW))["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert " request_id=rid-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 method=GET " in text_line(record, NOW)


@pytest.mark.parametrize(
    "raw, shown",
    [
        pytest.param("/a b", '"/a b"', id="space-quoted"),
        pytest.param('/a"b', '"/a\\"b"', id="quote-escaped"),
        pytest.param("/a=b", '"/a=b"', id="equals-quoted"),
        pytest.param("/a\x1bb", '"/a\\u001bb"', id="control-escaped"),
        pytest.param("/caf\u00e9", "/caf\u00e9", id="unicode-kept"),
    ],
)
def test_text_line_quotes_what_would_break_a_field(raw: str, shown: str) -> None:
    record = exchange()
    record.raw_path = raw
    assert f" path={shown} route=api " in text_line(record, NOW)


def test_text_line_shows_absent_values_as_dash() -> None:
    record = Exchange("rid-3", "GET", "/x", None)
    line = text_line(record, NOW)
    assert " route=- upstream=- upstream_status=- status=500 intercepted=false format=- " in line


@pytest.mark.parametrize(
    "raw, path",
    [
        pytest.param("/search?q=s3cr3t-token", "/search", id="query"),
        pytest.param("/login?", "/login", id="empty-query"),
        pytest.param("/cb#access_token=s3cr3t-token", "/cb", id="fragment"),
        pytest.param("/a?x=1#y", "/a", id="query-and-fragment"),
        pytest.param("http://user:hunter2@example.com/a/b?k=v", "/a/b", id="absolute-form-credentials"),
        pytest.param("http://example.com", "/", id="absolute-form-no-path"),
        pytest.param("/files/%3Fnot-a-query", "/files/%3Fnot-a-query", id="encoded-question-mark-is-path"),
        pytest.param("*", "*", id="asterisk-form"),
        pytest.param("/", "/", id="root"),
    ],
)
def test_loggable_path_drops_what_can_hold_secrets(raw: str, path: str) -> None:
    assert loggable_path(raw) == path


def test_a_request_with_credentials_logs_none_of_them() -> None:
    incoming = make_mocked_request(
        "POST", "/api/items?api_key=s3cr3t-token&password=hunter2",
        headers=CIMultiDict({
            "Authorization": "Bearer xyz789", "Cookie": "session=abc123", "X-Request-ID": "rid-9",
        }),
    )
    record = Exchange("rid-9", incoming.method, incoming.raw_path, ROUTE)
    finish_exchange(record, incoming, render(Problem(status=401)))
    for line in (json_line(record, NOW), text_line(record, NOW)):
        assert not [secret for secret in SECRETS if secret in line], line
        assert "path" in line and "/api/items" in line


@pytest.mark.parametrize(
    "response, method, format, body",
    [
        pytest.param(render(Problem(status=502)), "GET", "json", True, id="problem-json"),
        pytest.param(render(Problem(status=409), choice=HTML), "GET", "html", True, id="html"),
        pytest.param(render(Problem(status=409), choice=TEXT), "GET", "text", True, id="text"),
        pytest.param(render(Problem(status=409)), "HEAD", "json", False, id="head-sends-no-body"),
    ],
)
def test_finish_takes_status_format_and_size_of_a_rendered_problem(response: ProblemResponse, method: str,
                                                                    format: str, body: bool) -> None:
    record = Exchange("rid", method, "/", ROUTE)
    finish_exchange(record, request(method, total_bytes=7), response)
    assert (record.status, record.format, record.bytes_in) == (response.status, format, 7)
    assert record.bytes_out == (len(response.body) if body else 0)
    assert record.seconds >= 0


def test_finish_keeps_the_streamed_byte_count_of_a_passthrough() -> None:
    record = Exchange("rid", "GET", "/", ROUTE)
    record.bytes_out = 1234  # counted by the handler as chunks went out
    finish_exchange(record, request(), PassthroughResponse(status=206))
    assert (record.status, record.format, record.bytes_out) == (206, "passthrough", 1234)


@pytest.mark.parametrize("preset, status", [pytest.param(None, 500, id="raised"), pytest.param(499, 499, id="client-gone")])
def test_finish_without_a_response(preset: int | None, status: int) -> None:
    record = Exchange("rid", "GET", "/", ROUTE)
    if preset is not None:
        record.status = preset
    finish_exchange(record, request(), None)
    assert (record.status, record.format, record.bytes_out) == (status, None, 0)


def test_only_the_first_upstream_answer_counts() -> None:
    record = Exchange("rid", "GET", "/", ROUTE)
    assert (record.upstream_status, record.upstream_seconds) == (None, None)
    record.answered(200)
    first = record.upstream_seconds
    record.answered(409)  # a body read later by the pass-through of an unclaimed error
    assert (record.upstream_status, record.upstream_seconds) == (200, first)
    assert first is not None and first >= 0


def test_exchange_is_slotted() -> None:
    with pytest.raises(AttributeError):
        Exchange("rid", "GET", "/", None).anything = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "timestamp, text",
    [
        pytest.param(0.0, "1970-01-01T00:00:00.000Z", id="epoch"),
        pytest.param(NOW, "2023-11-14T22:13:20.500Z", id="millis"),
        pytest.param(1_700_000_000.9999, "2023-11-14T22:13:20.999Z", id="truncated-not-rounded-up"),
    ],
)
def test_rfc3339(timestamp: float, text: str) -> None:
    assert rfc3339(timestamp) == text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)


@pytest.mark.parametrize("style", ["json", "text", "off"])
def test_access_log_styles(caplog: pytest.LogCaptureFixture, style: str) -> None:
    with caplog.at_level(logging.INFO, logger=accesslog.LOGGER):
        AccessLog(style).write(exchange())
    records = [record for record in caplog.records if record.name == "errorproxy.access"]
    if style == "off":
        assert records == []
        return
    [record] = records
    assert record.levelno == logging.INFO
    message = record.getMessage()
    if style == "json":
        assert json.loads(message)["status"] == 409
    else:
        assert message.startswith("time=") and " status=409 " in message


def test_off_builds_no_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args):
        raise AssertionError("a record was built")

    monkeypatch.setattr(accesslog, "json_line", fail)
    monkeypatch.setattr(accesslog, "text_line", fail)
    AccessLog("off").write(exchange())


def test_no_record_when_the_logger_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger(accesslog.LOGGER)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.WARNING)
    built = []
    monkeypatch.setattr(accesslog, "json_line", lambda *args: built.append(args) or "{}")
    writer = AccessLog("json")
    writer.write(exchange())
    assert built == []


@pytest.fixture
def restored_access_logger():
    logger = logging.getLogger(accesslog.LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_configure_writes_bare_lines_once(restored_access_logger: logging.Logger) -> None:
    stream = io.StringIO()
    accesslog.configure(stream)
    accesslog.configure(stream)  # a second call (the demo, a test) adds no second handler
    AccessLog("json").write(exchange())
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["request_id"] == "rid-1"
    assert restored_access_logger.propagate is False
