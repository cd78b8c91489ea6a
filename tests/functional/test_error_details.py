"""What a client needs to act on an error, kept without a rule: field errors, version fields, trace ids.

Real aiohttp upstreams answer in each framework's shape; the proxy runs as a
subprocess in front of them.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningProxy, config_yaml

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
REFUSED = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once
PYTHON_TRACE = 'Traceback (most recent call last):\n  File "/srv/app/forms.py", line 3, in clean\nValueError'


# What this module tests lies past the request parser: it runs once, on aiohttp's C parser.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


# path -> (status, content type, body, the `errors` expected, the `detail` expected)
FIELD_ERRORS = {
    "/fastapi": (
        422, "application/json",
        {"detail": [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}]},
        [{"pointer": "/title", "detail": "field required"}], "title: field required",
    ),
    "/fastapi-two": (
        422, "application/json",
        {"detail": [{"type": "missing", "loc": ["body", "title"], "msg": "Field required", "input": {}},
                    {"type": "less_than_equal", "loc": ["query", "limit"], "msg": "Input should be less than or "
                     "equal to 100", "input": "500", "ctx": {"le": 100}}]},
        [{"pointer": "/title", "detail": "Field required"},
         {"parameter": "limit", "in": "query", "detail": "Input should be less than or equal to 100"}],
        "2 fields are invalid: title, limit",
    ),
    "/errors-list": (
        400, "application/json",
        {"errors": [{"field": "email", "message": "is invalid"}, {"field": "name", "message": PYTHON_TRACE}]},
        [{"pointer": "/email", "detail": "is invalid"}], "email: is invalid",
    ),
    "/laravel": (
        422, "application/json",
        {"message": "The given data was invalid.", "errors": {"email": ["The email has already been taken."]}},
        [{"pointer": "/email", "detail": "The email has already been taken."}], "The given data was invalid.",
    ),
    "/jsonapi": (
        422, "application/vnd.api+json",
        {"errors": [{"status": "422", "source": {"pointer": "/data/attributes/firstName"},
                     "title": "Invalid Attribute", "detail": "First name must contain at least two characters."}]},
        [{"pointer": "/data/attributes/firstName", "detail": "First name must contain at least two characters."}],
        "data.attributes.firstName: First name must contain at least two characters.",
    ),
    "/invalid-params": (
        400, "application/problem+json",
        {"type": "https://example.net/validation-error", "title": "Your request parameters didn't validate.",
         "invalid-params": [{"name": "age", "reason": "must be a positive integer"},
                            {"name": "color", "reason": "must be 'green', 'red' or 'blue'"}]},
        [{"pointer": "/age", "detail": "must be a positive integer"},
         {"pointer": "/color", "detail": "must be 'green', 'red' or 'blue'"}],
        "2 fields are invalid: age, color",
    ),
    "/rails": (
        422, "application/json; charset=utf-8",
        {"title": ["can't be blank"], "body": ["is too short (minimum is 10 characters)"]},
        [{"pointer": "/title", "detail": "can't be blank"},
         {"pointer": "/body", "detail": "is too short (minimum is 10 characters)"}],
        "2 fields are invalid: title, body",
    ),
}
# path -> (status, body, the extensions expected besides `errors`)
CONFLICTS = {
    "/django-409": (409, {"error": "Document was updated by another user", "current_version": 8},
                    "Document was updated by another user", {"current_version": 8}),
    "/couch-409": (409, {"error": "conflict", "reason": "Document update conflict.", "_rev": "3-917fa23"},
                   "conflict", {"_rev": "3-917fa23"}),
    "/nested-412": (412, {"error": {"message": "Stale", "currentVersion": 12, "updatedAt": "2025-01-31T09:14:03Z"}},
                    "Stale", {"currentVersion": 12, "updatedAt": "2025-01-31T09:14:03Z"}),
}


def _upstream_app(seen: list[dict[str, str | None]]) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        seen.append({name: request.headers.get(name) for name in ("traceparent", "tracestate")})
        if request.path in FIELD_ERRORS:
            status, content_type, body, _, _ = FIELD_ERRORS[request.path]
        elif request.path in CONFLICTS:
            status, body, _, _ = CONFLICTS[request.path]
            content_type = "application/json"
        else:
            return web.Response(text="ok")
        return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def _request(proxy: RunningProxy, path: str, method: str = "POST", **headers: str):
    async with aiohttp.ClientSession() as client:
        async with client.request(method, proxy.url + path, data=b'{"title": ""}',
                                  headers={"Accept": "application/json", **headers}) as response:
            return response.status, response.headers, await response.read()


async def _access_record(proxy: RunningProxy, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while True:
        for line in proxy.log().splitlines():
            if line.startswith("{") and json.loads(line).get("request_id") == request_id:
                return json.loads(line)
        if time.monotonic() > deadline:
            raise AssertionError(f"no access line for {request_id}:\n{proxy.log()}")
        await asyncio.sleep(0.02)


async def test_field_errors_of_each_shape(aiohttp_server, start_proxy):
    server = await aiohttp_server(_upstream_app([]))
    proxy = await start_proxy(f"""
listen: 127.0.0.1:0
upstreams:
  app: {{url: "{server.make_url('')}"}}
routes:
  - name: quiet
    match: {{path_prefix: /quiet/}}
    upstream: app
    strip_prefix: /quiet
    field_errors: false
  - name: app
    match: {{path_prefix: /}}
    upstream: app
""")
    for path, (status, _, _, errors, detail) in FIELD_ERRORS.items():
        got_status, headers, body = await _request(proxy, path)
        problem = json.loads(body)
        assert (got_status, problem["status"]) == (status, status), path
        assert problem["errors"] == errors, path
        assert problem["detail"] == detail, path
        assert "Traceback" not in body.decode() and "/srv/app" not in body.decode(), path
    # The switch: off, the stock sentence and no `errors`.
    _, _, body = await _request(proxy, "/quiet/fastapi")
    problem = json.loads(body)
    assert "errors" not in problem
    assert problem["detail"] == "The request was understood but its content is not valid. Correct it and try again."


async def test_conflicts_keep_their_version_fields(aiohttp_server, start_proxy):
    server = await aiohttp_server(_upstream_app([]))
    proxy = await start_proxy(config_yaml(str(server.make_url("")), route="""
errors:
  - status: 409
    body_matches: conflict
    extensions: {current_revision: /_rev}
"""))
    for path, (status, _, detail, kept) in CONFLICTS.items():
        got_status, _, body = await _request(proxy, path, "PUT", **{"X-Request-ID": "rid"})
        problem = json.loads(body)
        assert got_status == status, path
        base = {"type", "title", "status", "detail", "instance", "request_id"}
        expected = {"current_revision": "3-917fa23"} if path == "/couch-409" else kept  # the rule renames _rev
        assert {key: value for key, value in problem.items() if key not in base} == expected, path
        assert problem["detail"] == detail, path


async def test_trace_context(aiohttp_server, start_proxy):
    """A valid traceparent's trace id reaches the problem, its page and the access log; an invalid one none."""
    seen: list[dict[str, str | None]] = []
    server = await aiohttp_server(_upstream_app(seen))
    config = f"""
listen: 127.0.0.1:0
upstreams:
  app: {{url: "{server.make_url('')}"}}
  down: {{url: "{REFUSED}", retries: 0}}
routes:
  - name: envelope
    match: {{path_prefix: /envelope/}}
    upstream: down
    json_style: envelope
  - name: custom
    match: {{path_prefix: /custom/}}
    upstream: down
    json_style: custom
    json_template: {{failed: true, trace: "${{trace_id}}", request: "${{request_id}}"}}
  - name: down
    match: {{path_prefix: /down/}}
    upstream: down
  - name: app
    match: {{path_prefix: /}}
    upstream: app
"""
    proxy = await start_proxy(config)
    status, headers, body = await _request(proxy, "/down/x", "GET", traceparent=TRACEPARENT, **{"X-Request-ID": "t1"})
    assert (status, headers["Proxy-Status"]) == (502, "errorproxy; error=connection_refused")
    assert json.loads(body)["trace_id"] == TRACE
    assert (await _access_record(proxy, "t1"))["trace_id"] == TRACE

    invalid = TRACEPARENT.replace("-01", "-1")  # flags one digit short
    status, _, body = await _request(proxy, "/down/x", "GET", traceparent=invalid, **{"X-Request-ID": "t2"})
    assert status == 502 and "trace_id" not in json.loads(body)
    assert (await _access_record(proxy, "t2"))["trace_id"] is None

    _, _, body = await _request(proxy, "/envelope/x", "GET", traceparent=TRACEPARENT)
    assert json.loads(body)["error"]["trace_id"] == TRACE
    _, _, body = await _request(proxy, "/custom/x", "GET", traceparent=TRACEPARENT, **{"X-Request-ID": "t3"})
    assert json.loads(body) == {"failed": True, "trace": TRACE, "request": "t3"}
    _, headers, page = await _request(proxy, "/down/x", "GET", traceparent=TRACEPARENT, Accept="text/html")
    assert headers["Content-Type"].startswith("text/html")
    assert f"<code>{TRACE}</code>" in page.decode()

    # An upstream's own error carries it too; traceparent and tracestate go upstream as they came.
    _, _, body = await _request(proxy, "/fastapi", traceparent=TRACEPARENT, tracestate=TRACESTATE)
    assert json.loads(body)["trace_id"] == TRACE
    await _request(proxy, "/ok", "GET", traceparent=invalid, tracestate=TRACESTATE)
    assert seen == [{"traceparent": TRACEPARENT, "tracestate": TRACESTATE},
                    {"traceparent": invalid, "tracestate": TRACESTATE}]
