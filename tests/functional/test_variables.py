"""`${VAR}` in a config file, with the variables in the environment of the proxy process."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ROOT

CONFIG = """
listen: ${LISTEN:-127.0.0.1:0}
upstreams:
  app:
    url: ${APP_URL}
    retries: ${APP_RETRIES:-0}
routes:
  - name: ${ROUTE_NAME:-all}
    match: {path_prefix: /}
    upstream: app
    format: json
    json_style: custom
    json_template: {code: "${status}", title: "${title}"}
"""


# What this module tests lies past the request parser.
@pytest.fixture
def http_parser() -> str:
    return "c-parser"


async def test_values_come_from_the_proxy_environment(aiohttp_server, start_proxy):
    async def conflict(request: web.Request) -> web.Response:
        return web.json_response({"message": "stale"}, status=409)

    app = web.Application()
    app.router.add_get("/doc", conflict)
    server = await aiohttp_server(app)
    # `status` in the environment must not reach the template: its ${status} is the response's.
    proxy = await start_proxy(CONFIG, env={"APP_URL": str(server.make_url("")), "ROUTE_NAME": "documents",
                                           "status": "from-the-environment"})
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url + "/doc") as response:
            assert response.status == 409
            assert await response.json() == {"code": 409, "title": "Conflict"}
    assert '"route": "documents"' in proxy.log() or '"route":"documents"' in proxy.log()


def test_an_unset_variable_is_named_with_its_path(tmp_path):
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORPROXY_") and k != "APP_URL"}
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)],
                            capture_output=True, text=True, timeout=30, env=env, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}: upstreams.app.url: ${{APP_URL}} is not set"]
