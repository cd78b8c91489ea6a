"""render: a Problem as an HTTP response, per format and JSON style, with its headers."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from proxy.core.negotiation import HTML, JSON, PROBLEM, TEXT
from proxy.core.problem import Problem
from proxy.http.render import Shape, envelope, fill, render
from proxy.core.settings import ErrorPolicy

CONFLICT = Problem(
    status=409, detail="Fetch it again.", instance="/documents/42", request_id="rid-1",
    extensions={"current_etag": '"v7"', "current_version": 7}, proxy_status="received-status=409",
)
TIMEOUT = Problem(status=504, detail="No answer in time.", request_id="rid-2", proxy_status="error=connection_timeout")
BARE = Problem(status=500)


def custom(template: dict) -> ErrorPolicy:
    return ErrorPolicy(json_style="custom", json_template=MappingProxyType(template))


def body_json(response) -> object:
    return json.loads(response.body)


# --- JSON styles and content types ---------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "policy", "content_type"),
    [
        pytest.param(PROBLEM, None, "application/problem+json", id="problem-no-policy"),
        pytest.param(PROBLEM, ErrorPolicy(), "application/problem+json", id="problem"),
        pytest.param(JSON, ErrorPolicy(), "application/json", id="problem-style-json-choice"),
        pytest.param(PROBLEM, ErrorPolicy(json_style="envelope"), "application/json", id="envelope"),
        pytest.param(JSON, ErrorPolicy(json_style="envelope"), "application/json", id="envelope-json-choice"),
        pytest.param(PROBLEM, custom({"code": "${status}"}), "application/json", id="custom"),
        pytest.param(HTML, ErrorPolicy(json_style="envelope"), "text/html; charset=utf-8", id="html-ignores-style"),
        pytest.param(TEXT, custom({"code": "${status}"}), "text/plain; charset=utf-8", id="text-ignores-style"),
        pytest.param(PROBLEM, ErrorPolicy(json_style="custom"), "application/problem+json",
                     id="custom-without-template-falls-back"),
    ],
)
def test_content_type(choice, policy, content_type):
    response = render(CONFLICT, Shape(policy) if policy is not None else None, choice=choice)
    assert response.headers.getall("Content-Type") == [content_type]
    assert response.status == 409


def test_problem_body():
    assert body_json(render(CONFLICT)) == {
        "type": "about:blank", "title": "Conflict", "status": 409, "detail": "Fetch it again.",
        "instance": "/documents/42", "request_id": "rid-1", "current_etag": '"v7"', "current_version": 7,
    }


def test_problem_body_same_for_json_choice():
    assert render(CONFLICT, choice=JSON).body == render(CONFLICT, choice=PROBLEM).body


def test_envelope_body():
    assert body_json(render(CONFLICT, Shape(ErrorPolicy(json_style="envelope")), choice=PROBLEM)) == {
        "error": {"code": 409, "message": "Conflict", "details": "Fetch it again.", "request_id": "rid-1",
                  "current_etag": '"v7"', "current_version": 7},
    }


def test_envelope_extensions_do_not_replace_its_members():
    problem = Problem(status=400, detail="d", extensions={"code": "E42", "message": "m", "field": "name"})
    assert envelope(problem) == {"error": {"code": 400, "message": "Bad Request", "details": "d", "field": "name"}}


def test_envelope_without_request_id():
    assert "request_id" not in envelope(BARE)["error"]


TEMPLATE_VALUES = {"status": 409, "title": "Conflict", "detail": "", "flag": False, "sku": {"id": "A-1"},
                   "tags": ["a", "b"], "ratio": 1.5}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("${status}", 409, id="whole-placeholder-keeps-int"),
        pytest.param("${flag}", False, id="whole-placeholder-keeps-bool"),
        pytest.param("${sku}", {"id": "A-1"}, id="whole-placeholder-keeps-object"),
        pytest.param("${tags}", ["a", "b"], id="whole-placeholder-keeps-list"),
        pytest.param("${title}", "Conflict", id="whole-placeholder-string"),
        pytest.param("Error ${status}: ${title}", "Error 409: Conflict", id="mixed-string"),
        pytest.param(" ${status}", " 409", id="not-whole-becomes-text"),
        pytest.param("${status}${status}", "409409", id="two-placeholders"),
        pytest.param("${nope}", None, id="unknown-whole-is-null"),
        pytest.param("[${nope}]", "[]", id="unknown-inside-text-is-empty"),
        pytest.param("ok=${flag}", "ok=false", id="bool-inside-text-json-spelling"),
        pytest.param("sku ${sku}", 'sku {"id": "A-1"}', id="object-inside-text-json-spelling"),
        pytest.param("r=${ratio}", "r=1.5", id="float-inside-text"),
        pytest.param("${detail}", "", id="empty-string-value"),
        pytest.param("${ status }", "${ status }", id="spaces-not-a-placeholder"),
        pytest.param("$status", "$status", id="no-braces-not-a-placeholder"),
        pytest.param("${1abc}", "${1abc}", id="bad-name-not-a-placeholder"),
        pytest.param(7, 7, id="int-unchanged"),
        pytest.param(None, None, id="null-unchanged"),
        pytest.param(True, True, id="bool-unchanged"),
        pytest.param(["${status}", "x${status}", 3], [409, "x409", 3], id="list"),
        pytest.param(
            {"error": {"code": "${status}", "items": [{"t": "${title}"}, {"n": None}]}, "v": 2},
            {"error": {"code": 409, "items": [{"t": "Conflict"}, {"n": None}]}, "v": 2},
            id="nested-maps-and-lists",
        ),
        pytest.param(MappingProxyType({"c": "${status}"}), {"c": 409}, id="read-only-mapping"),
    ],
)
def test_fill(template, expected):
    assert fill(template, TEMPLATE_VALUES) == expected


def test_custom_body_values():
    policy = custom({
        "status": "${status}",
        "upstream": "${upstream_status}",
        "error": {"message": "${title}: ${detail}", "id": "${request_id}", "etag": "${current_etag}"},
        "where": "${method} ${path}",
        "instance": "${instance}",
        "missing": "${nope}",
        "list": ["${current_version}", "v${current_version}"],
    })
    response = render(CONFLICT, Shape(policy), choice=PROBLEM, method="PUT", path="/api/documents/42")
    assert body_json(response) == {
        "status": 409,
        "upstream": 409,
        "error": {"message": "Conflict: Fetch it again.", "id": "rid-1", "etag": '"v7"'},
        "where": "PUT /api/documents/42",
        "instance": "/documents/42",
        "missing": None,
        "list": [7, "v7"],
    }


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        pytest.param(Problem(status=502, proxy_status="received-status=500"), 500, id="from-upstream"),
        pytest.param(TIMEOUT, None, id="from-proxy"),
        pytest.param(BARE, None, id="none"),
    ],
)
def test_custom_upstream_status(problem, expected):
    assert body_json(render(problem, Shape(custom({"u": "${upstream_status}"})), choice=PROBLEM)) == {"u": expected}


# --- HTML and text -------------------------------------------------------------------------

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.mark.parametrize("payload", [pytest.param(p, id=f"payload-{i}") for i, p in enumerate(XSS)])
@pytest.mark.parametrize("field", ["detail", "title"])
def test_html_escapes(payload, field):
    problem = Problem(status=409, request_id="rid-1", **{field: payload})
    page = render(problem, choice=HTML).body.decode()
    assert payload not in page
    assert "<script>" not in page and "<img" not in page
    assert "&lt;" in page
    if '"' in payload:
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_html_page():
    response = render(CONFLICT, choice=HTML)
    page = response.body.decode()
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>409 Conflict" in page
    assert "Fetch it again." in page
    assert "<code>rid-1</code>" in page


def test_html_page_without_request_id():
    assert b"Request ID" not in render(BARE, choice=HTML).body


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        pytest.param(CONFLICT, "409 Conflict\n\nFetch it again.\n\nRequest ID: rid-1\n", id="with-request-id"),
        pytest.param(Problem(status=404, detail="Nothing here."), "404 Not Found\n\nNothing here.\n", id="without"),
        pytest.param(Problem(status=400, detail="<b>&"), "400 Bad Request\n\n<b>&\n", id="not-escaped"),
    ],
)
def test_text_page(problem, expected):
    response = render(problem, choice=TEXT)
    assert response.body.decode() == expected
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", [PROBLEM, JSON, HTML, TEXT], ids=lambda c: c.media_type)
def test_cache_control_no_store_every_format(choice):
    keep = [("Cache-Control", "public, max-age=600")]
    assert render(CONFLICT, choice=choice, keep=keep).headers.getall("Cache-Control") == ["no-store"]


@pytest.mark.parametrize(
    ("problem", "request_id", "proxy_status"),
    [
        pytest.param(CONFLICT, "rid-1", "errorproxy; received-status=409", id="upstream-error"),
        pytest.param(TIMEOUT, "rid-2", "errorproxy; error=connection_timeout", id="proxy-error"),
        pytest.param(BARE, None, None, id="neither"),
    ],
)
def test_request_id_and_proxy_status(problem, request_id, proxy_status):
    headers = render(problem).headers
    assert headers.get("X-Request-ID") == request_id
    assert headers.get("Proxy-Status") == proxy_status


@pytest.mark.parametrize(
    ("shape", "choice", "vary"),
    [
        pytest.param(Shape(ErrorPolicy(format="auto")), None, ["Accept"], id="negotiated"),
        pytest.param(Shape(ErrorPolicy(format="html")), None, [], id="fixed-format"),
        pytest.param(Shape(ErrorPolicy(format="auto")), HTML, [], id="forced-choice"),
        pytest.param(None, None, [], id="plain-problem"),
    ],
)
def test_vary_accept_only_when_negotiated(shape, choice, vary):
    response = render(CONFLICT, shape, accept="text/html", choice=choice)
    assert response.headers.getall("Vary", []) == vary


def test_kept_upstream_headers_in_order():
    keep = [
        ("ETag", '"v7"'),
        ("Set-Cookie", "a=1; Path=/"),
        ("Retry-After", "120"),
        ("Set-Cookie", "b=2; Path=/"),
        ("Link", '</documents/42>; rel="latest-version"'),
        ("Content-Type", "text/html"),
    ]
    headers = render(CONFLICT, choice=PROBLEM, keep=keep).headers
    assert headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert headers["ETag"] == '"v7"'
    assert headers["Retry-After"] == "120"
    assert headers["Link"] == '</documents/42>; rel="latest-version"'
    assert headers.getall("Content-Type") == ["application/problem+json"]


def test_no_headers_beyond_the_ones_set():
    headers = render(BARE).headers
    assert {name.lower() for name in headers} == {"content-type", "cache-control", "content-language"}


@pytest.mark.parametrize("status", [400, 404, 409, 429, 500, 502, 504])
def test_status_line(status):
    assert render(Problem(status=status)).status == status
