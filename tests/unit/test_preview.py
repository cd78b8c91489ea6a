"""preview: an error as the proxy would send it, without a proxy; the gallery; `errorproxy preview`."""

from __future__ import annotations

import json
import re

import pytest

from proxy.cli import main
from proxy.config.loader import from_text
from proxy.tools.preview import GALLERY_STATUSES, SAMPLE_REQUEST_ID, PreviewError, parse_status, preview, write_all
from proxy.core.problem import default_detail


def settings(tmp_path, defaults: str = "{}", brand: str = "{name: Acme, accent_color: '#ffcc00'}"):
    (tmp_path / "site_error.html").write_text('{% extends "base.html" %}{% block headline %}SITE {{ status }}{% endblock %}')
    return from_text(f"""
listen: 127.0.0.1:0
brand: {brand}
templates_dir: {tmp_path}
defaults: {defaults}
upstreams: {{app: "http://127.0.0.1:9000"}}
routes:
  - {{name: api, match: {{path_prefix: /api/}}, upstream: app, json_style: envelope}}
  - {{name: site, match: {{path_prefix: /}}, upstream: app, template: site_error.html}}
""")


@pytest.mark.parametrize(
    ("text", "status"),
    [pytest.param("400", 400, id="first"), pytest.param("409", 409, id="conflict"), pytest.param("599", 599, id="last")],
)
def test_parse_status_accepts_error_statuses(text, status):
    assert parse_status(text) == status


@pytest.mark.parametrize("text", ["200", "399", "600", "abc", "", "4o9", "-409", "409.0"])
def test_parse_status_refuses_anything_else(text):
    with pytest.raises(PreviewError, match=r"^STATUS must be an error status from 400 to 599, not "):
        parse_status(text)


def test_without_accept_a_problem_json_as_the_proxy_sends_it():
    response = preview(409, path="/documents/42")
    assert response.status == 409
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Vary"] == "Accept"
    assert response.headers["X-Request-ID"] == SAMPLE_REQUEST_ID and "Proxy-Status" not in response.headers
    assert json.loads(response.body) == {
        "type": "about:blank", "title": "Conflict", "status": 409, "detail": default_detail(409),
        "instance": "/documents/42", "request_id": SAMPLE_REQUEST_ID,
    }


@pytest.mark.parametrize(
    ("accept", "content_type", "marker"),
    [
        pytest.param("text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8",
                     b"<h1>Someone else changed this</h1>", id="browser"),
        pytest.param("text/plain", "text/plain; charset=utf-8", b"409 Conflict\n", id="text"),
        pytest.param("application/json", "application/json", b'"status":409', id="json"),
    ],
)
def test_format_is_negotiated_on_accept(accept, content_type, marker):
    response = preview(409, accept=accept)
    assert response.headers["Content-Type"] == content_type and marker in response.body
    assert SAMPLE_REQUEST_ID.encode() in response.body


def test_built_in_brand_without_a_config():
    body = preview(502, accept="text/html").body.decode()
    assert "<title>502 Bad Gateway · This service</title>" in body


def test_config_brand_template_and_route_shape(tmp_path):
    config = settings(tmp_path)
    site = preview(409, accept="text/html", path="/documents/42", settings=config).body.decode()
    assert "<h1>SITE 409</h1>" in site and "· Acme</title>" in site and "--on-accent: #000000" in site
    api = preview(409, accept="text/html", path="/api/documents/42", settings=config).body.decode()
    assert "<h1>Someone else changed this</h1>" in api  # not the site route's template
    envelope = json.loads(preview(409, path="/api/x", settings=config).body)
    assert envelope["error"]["code"] == 409 and envelope["error"]["request_id"] == SAMPLE_REQUEST_ID


def test_a_fixed_format_is_not_negotiated(tmp_path):
    response = preview(404, accept="application/json", settings=settings(tmp_path, defaults="{format: html}"))
    assert response.headers["Content-Type"] == "text/html; charset=utf-8" and "Vary" not in response.headers


def test_write_all_makes_every_page_and_a_self_contained_gallery(tmp_path):
    out = tmp_path / "pages"
    written = write_all(out)
    names = {path.name for path in written}
    assert {418, 599} <= set(GALLERY_STATUSES)
    assert names == {f"{s}.{e}" for s in GALLERY_STATUSES for e in ("html", "json", "txt")} | {"index.html"}
    for status in GALLERY_STATUSES:
        assert json.loads((out / f"{status}.json").read_bytes())["status"] == status
        assert (out / f"{status}.txt").read_text().startswith(f"{status} ")
        assert f"<p class=\"status\">Error {status}</p>" in (out / f"{status}.html").read_text()
    index = (out / "index.html").read_text()
    assert "<script" not in index and not re.search(r"""(src|href)=["']?(https?:)?//""", index)
    assert set(re.findall(r'(?:src|href)="([^"#]+)"', index)) == names - {"index.html"}


def test_cli_prints_the_body_and_optionally_the_headers(capsysbinary):
    with pytest.raises(SystemExit) as exit_:
        main(["preview", "429", "--accept", "text/plain", "--path", "/api/x"])
    assert exit_.value.code == 0
    assert capsysbinary.readouterr().out == (
        f"429 Too Many Requests\n\n{default_detail(429)}\n\nRequest ID: {SAMPLE_REQUEST_ID}\n".encode()
    )
    with pytest.raises(SystemExit):
        main(["preview", "409", "--headers"])
    head, _, body = capsysbinary.readouterr().out.partition(b"\n\n")
    assert head.splitlines()[0] == b"HTTP/1.1 409 Conflict"
    assert b"Content-Type: application/problem+json" in head and f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["status"] == 409


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["200"], "STATUS must be an error status from 400 to 599, not '200'", id="not-an-error"),
        pytest.param(["four"], "STATUS must be an error status from 400 to 599, not 'four'", id="not-a-number"),
        pytest.param([], "give either STATUS or --all --out DIR", id="nothing"),
        pytest.param(["409", "--all", "--out", "x"], "give either STATUS or --all --out DIR", id="both"),
        pytest.param(["--all"], "--all and --out DIR go together", id="all-without-out"),
    ],
)
def test_cli_usage_errors_are_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["preview", *args])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"errorproxy preview: {message}\n"


def test_cli_writes_the_gallery(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["preview", "--all", "--out", str(tmp_path / "g")])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"wrote {3 * len(GALLERY_STATUSES) + 1} files; open {tmp_path / 'g' / 'index.html'}\n"
