"""problem: RFC 9457 members, their order, and the mapping from proxy errors."""

from __future__ import annotations

import json

import pytest

from proxy.core import errors
from proxy.core.problem import Problem


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        pytest.param(
            Problem(status=404),
            [("type", "about:blank"), ("title", "Not Found"), ("status", 404)],
            id="minimal-title-from-reason",
        ),
        pytest.param(
            Problem(status=499),
            [("type", "about:blank"), ("title", "Client Error"), ("status", 499)],
            id="unregistered-status-title",
        ),
        pytest.param(
            Problem(status=404, detail="No route."),
            [("type", "about:blank"), ("title", "Not Found"), ("status", 404), ("detail", "No route.")],
            id="docstring-example",
        ),
        pytest.param(
            Problem(status=409, title="Version conflict", detail="d", type="https://errors.test/conflict",
                    instance="/orders/7", request_id="rid-1", extensions={"current_version": 7, "etag": '"v7"'}),
            [("type", "https://errors.test/conflict"), ("title", "Version conflict"), ("status", 409),
             ("detail", "d"), ("instance", "/orders/7"), ("request_id", "rid-1"),
             ("current_version", 7), ("etag", '"v7"')],
            id="all-members-in-order-extensions-last",
        ),
        pytest.param(
            Problem(status=500, detail="", instance=None, request_id=None),
            [("type", "about:blank"), ("title", "Internal Server Error"), ("status", 500)],
            id="empty-detail-and-none-omitted",
        ),
        pytest.param(
            Problem(status=502, request_id="rid-2"),
            [("type", "about:blank"), ("title", "Bad Gateway"), ("status", 502), ("request_id", "rid-2")],
            id="request-id-without-instance",
        ),
        pytest.param(
            Problem(status=400, instance="/x", extensions={"errors": [{"field": "name"}]}),
            [("type", "about:blank"), ("title", "Bad Request"), ("status", 400), ("instance", "/x"),
             ("errors", [{"field": "name"}])],
            id="structured-extension",
        ),
    ],
)
def test_to_dict(problem: Problem, expected: list[tuple[str, object]]) -> None:
    assert list(problem.to_dict().items()) == expected


def test_proxy_status_is_not_a_body_member() -> None:
    assert "proxy_status" not in Problem(status=502, proxy_status="error=connection_refused").to_dict()


def test_extensions_do_not_override_standard_members() -> None:
    problem = Problem(
        status=404, detail="real detail", instance="/real", request_id="real-id",
        extensions={"type": "https://evil.test", "title": "Evil", "status": 200, "detail": "evil",
                    "instance": "/evil", "request_id": "evil-id", "code": "E404"},
    )
    assert problem.to_dict() == {
        "type": "about:blank", "title": "Not Found", "status": 404, "detail": "real detail",
        "instance": "/real", "request_id": "real-id", "code": "E404",
    }


@pytest.mark.parametrize(
    ("error", "status", "title", "proxy_status"),
    [
        pytest.param(errors.ProxyError(), 500, "Internal Server Error", "error=proxy_internal_error", id="base"),
        pytest.param(errors.BadRequest(), 400, "Bad Request", None, id="bad-request"),
        pytest.param(errors.NoRoute(), 404, "Not Found", "error=destination_not_found", id="no-route"),
        pytest.param(errors.BodyTooLarge(), 413, "Content Too Large", None, id="body-too-large"),
        pytest.param(errors.UpstreamError(), 502, "Bad Gateway", "error=proxy_internal_error", id="upstream"),
        pytest.param(errors.ConnectionRefused(), 502, "Bad Gateway", "error=connection_refused",
                     id="connection-refused"),
        pytest.param(errors.ConnectionTimeout(), 504, "Gateway Timeout", "error=connection_timeout",
                     id="connection-timeout"),
        pytest.param(errors.ResponseTimeout(), 504, "Gateway Timeout", "error=http_response_timeout",
                     id="response-timeout"),
        pytest.param(errors.ResponseMalformed(), 502, "Bad Gateway", "error=http_protocol_error",
                     id="response-malformed"),
        pytest.param(errors.ResponseIncomplete(), 502, "Bad Gateway", "error=http_response_incomplete",
                     id="response-incomplete"),
        pytest.param(errors.ResponseTooLarge(), 502, "Bad Gateway", "error=http_response_header_section_size",
                     id="response-too-large"),
        pytest.param(errors.UpgradeFailed(), 502, "Bad Gateway", "error=http_upgrade_failed", id="upgrade-failed"),
        pytest.param(errors.ClientGone(), 499, "Client Closed Request", None, id="client-gone"),
    ],
)
def test_from_error(error: errors.ProxyError, status: int, title: str, proxy_status: str | None) -> None:
    problem = Problem.from_error(error, instance="/orders", request_id="rid-1")
    assert (problem.status, problem.title, problem.proxy_status) == (status, title, proxy_status)
    assert problem.detail == type(error).detail
    assert problem.to_dict() == {
        "type": "about:blank", "title": title, "status": status, "detail": type(error).detail,
        "instance": "/orders", "request_id": "rid-1",
    }


def test_from_error_keeps_a_given_detail() -> None:
    problem = Problem.from_error(errors.BadRequest("The Content-Length is not a number."), instance=None,
                                 request_id=None)
    assert problem.to_dict() == {
        "type": "about:blank", "title": "Bad Request", "status": 400,
        "detail": "The Content-Length is not a number.",
    }


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        pytest.param(Problem(status=404), b'{"type":"about:blank","title":"Not Found","status":404}', id="compact"),
        pytest.param(
            Problem(status=409, detail="Conflit de version: réessayez ✓", extensions={"etag": '"v7"'}),
            ('{"type":"about:blank","title":"Conflict","status":409,'
             '"detail":"Conflit de version: réessayez ✓","etag":"\\"v7\\""}').encode("utf-8"),
            id="utf8-not-escaped",
        ),
        pytest.param(
            Problem(status=400, detail="<b>&</b>\n"),
            b'{"type":"about:blank","title":"Bad Request","status":400,"detail":"<b>&</b>\\n"}',
            id="control-characters-escaped",
        ),
    ],
)
def test_to_json(problem: Problem, expected: bytes) -> None:
    body = problem.to_json()
    assert isinstance(body, bytes)
    assert body == expected
    assert json.loads(body.decode("utf-8")) == problem.to_dict()
