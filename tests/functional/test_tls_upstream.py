"""https:// upstreams: real aiohttp HTTPS servers, certificates made by trustme for each test."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
import trustme
from aiohttp import web

from ..conftest import config_yaml
from .certs import ca_file, expired, issue, serve, server_context


@pytest.fixture
def http_parser() -> str:
    return "c-parser"  # past the request parser: once is enough


def _app(seen: list) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append((id(request.transport), peer))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str(f"echo {message.data}")
            return ws
        return web.json_response({"path": request.path_qs, "host": request.headers["Host"]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def upstreams():
    runners = []

    async def start(context: ssl.SSLContext, seen: list | None = None) -> str:
        runner, url = await serve(_app(seen if seen is not None else []), ssl_context=context)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


async def _get(proxy, path: str = "/") -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url + path) as response:
            return response.status, dict(response.headers), await response.json(content_type=None)


async def test_private_ca_verified_and_connections_kept_alive(tmp_path, upstreams, start_proxy):
    ca = trustme.CA()
    seen: list = []
    url = await upstreams(server_context(issue(ca, tmp_path, "upstream")), seen)
    proxy = await start_proxy(config_yaml(url + "/base", upstream=f"tls: {{ca_file: {ca_file(ca, tmp_path)}}}"))
    for query in ("a=1", "a=2", "a=3"):
        status, _, body = await _get(proxy, f"/x?{query}")
        assert (status, body["path"]) == (200, f"/base/x?{query}")
    assert len({connection for connection, _ in seen}) == 1, "one TLS connection, kept alive and reused"


async def test_server_name_is_sent_and_checked_when_the_url_names_an_address(tmp_path, upstreams, start_proxy):
    ca = trustme.CA()
    url = await upstreams(server_context(issue(ca, tmp_path, "upstream", "api.internal.example")))
    proxy = await start_proxy(config_yaml(
        url, upstream=f"tls: {{ca_file: {ca_file(ca, tmp_path)}, server_name: api.internal.example}}"))
    status, _, body = await _get(proxy)
    assert status == 200
    assert body["host"] == url.removeprefix("https://")  # Host still names the target


@pytest.mark.parametrize(
    "case, proxy_status, detail",
    [
        pytest.param("other-ca", "tls_certificate_error", "The service's TLS certificate is not trusted (unknown issuer).",
                     id="unknown-issuer"),
        pytest.param("other-name", "tls_certificate_error", "The service's TLS certificate does not match the name.",
                     id="wrong-name"),
        pytest.param("expired", "tls_certificate_error", "The service's TLS certificate has expired.", id="expired"),
        pytest.param("system-store", "tls_certificate_error",
                     "The service's TLS certificate is not trusted (unknown issuer).", id="private-ca-not-in-system-store"),
        pytest.param("plain-http", "tls_protocol_error", "The service did not answer in TLS (is it plain HTTP?).",
                     id="plain-http-upstream"),
    ],
)
async def test_certificate_failures_are_502_problems_in_words(tmp_path, upstreams, start_proxy, case,
                                                             proxy_status, detail):
    ca = trustme.CA()
    trusted = ca_file(ca, tmp_path)
    tls = f"tls: {{ca_file: {trusted}}}"
    if case == "other-ca":
        url = await upstreams(server_context(issue(trustme.CA(), tmp_path, "upstream")))
    elif case == "other-name":
        url = await upstreams(server_context(issue(ca, tmp_path, "upstream", "localhost")))
        tls = f"tls: {{ca_file: {trusted}, server_name: api.example.com}}"
    elif case == "expired":
        url = await upstreams(server_context(expired(ca, tmp_path, "upstream")))
    elif case == "system-store":
        url = await upstreams(server_context(issue(ca, tmp_path, "upstream")))
        tls = ""
    else:
        runner, url = await serve(_app([]))
        url = url.replace("http://", "https://")
    proxy = await start_proxy(config_yaml(url, upstream=tls))
    status, headers, body = await _get(proxy)
    assert status == 502
    assert headers["Proxy-Status"] == f"errorproxy; error={proxy_status}"
    assert body["detail"] == detail
    assert "SSL" in proxy.log() or "SSLError" in proxy.log()  # OpenSSL's own words: in the log only
    if case == "plain-http":
        await runner.cleanup()


async def test_verify_false_accepts_any_certificate_and_warns_at_start(tmp_path, upstreams, start_proxy):
    url = await upstreams(server_context(issue(trustme.CA(), tmp_path, "upstream", "elsewhere.example")))
    proxy = await start_proxy(config_yaml(url, upstream="tls: {verify: false}"))
    status, _, _ = await _get(proxy)
    assert status == 200
    assert "upstreams.app.tls.verify: false turns certificate checks off" in proxy.log()


@pytest.mark.parametrize("client", ["none", "trusted", "other-ca"])
async def test_client_certificate_to_the_upstream(tmp_path, upstreams, start_proxy, client):
    ca, clients = trustme.CA(), trustme.CA()
    seen: list = []
    # TLS 1.2, so a refused client certificate fails the handshake itself (1.3 tells it after).
    context = server_context(issue(ca, tmp_path, "upstream"), client_ca=ca_file(clients, tmp_path, "clients"),
                             maximum=ssl.TLSVersion.TLSv1_2)
    url = await upstreams(context, seen)
    tls = f"ca_file: {ca_file(ca, tmp_path)}"
    if client == "trusted":
        mine = issue(clients, tmp_path, "client", "proxy.example")
        tls += f", client_cert: {mine.cert}, client_key: {mine.key}"
    elif client == "other-ca":
        mine = issue(trustme.CA(), tmp_path, "client", "proxy.example")
        tls += f", client_cert: {mine.pem}"  # key and chain in one file
    proxy = await start_proxy(config_yaml(url, upstream=f"tls: {{{tls}}}"))
    status, headers, body = await _get(proxy)
    if client == "trusted":
        assert status == 200
        assert seen and seen[0][1] is not None  # the upstream saw the proxy's certificate
    else:
        assert status == 502
        assert headers["Proxy-Status"] == "errorproxy; error=tls_protocol_error"
        assert body["detail"] == "The service closed the connection during the TLS handshake."


async def test_websocket_upgrade_reaches_a_wss_upstream(tmp_path, upstreams, start_proxy):
    ca = trustme.CA()
    url = await upstreams(server_context(issue(ca, tmp_path, "upstream")))
    proxy = await start_proxy(config_yaml(url, upstream=f"tls: {{ca_file: {ca_file(ca, tmp_path)}}}"))
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/live") as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "echo hello"


async def test_websocket_to_an_untrusted_wss_upstream_is_a_certificate_error(tmp_path, upstreams, start_proxy):
    url = await upstreams(server_context(issue(trustme.CA(), tmp_path, "upstream")))
    proxy = await start_proxy(config_yaml(url, upstream=f"tls: {{ca_file: {ca_file(trustme.CA(), tmp_path)}}}"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(proxy.url + "/live")
    assert refused.value.status == 502
    assert refused.value.headers["Proxy-Status"] == "errorproxy; error=tls_certificate_error"


@pytest.mark.parametrize("client", ["none", "trusted"])
async def test_tls13_upstream_asking_for_a_client_certificate(tmp_path, start_proxy, client):
    """openssl s_server as the upstream: with TLS 1.3 its refusal is an alert after the handshake,
    which arrives instead of the response."""
    import asyncio
    import socket
    import subprocess

    ca, clients = trustme.CA(), trustme.CA()
    server = issue(ca, tmp_path, "upstream")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(server.cert), "-key", str(server.key),
         "-CAfile", str(ca_file(clients, tmp_path, "clients")), "-Verify", "1", "-tls1_3", "-www", "-quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        tls = f"ca_file: {ca_file(ca, tmp_path)}"
        if client == "trusted":
            mine = issue(clients, tmp_path, "client", "proxy.example")
            tls += f", client_cert: {mine.cert}, client_key: {mine.key}"
        proxy = await start_proxy(config_yaml(f"https://127.0.0.1:{port}", upstream=f"tls: {{{tls}}}"))
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url + "/") as response:
                if client == "trusted":
                    assert response.status == 200
                    assert "s_server" in await response.text()
                else:
                    assert response.status == 502
                    assert response.headers["Proxy-Status"] == "errorproxy; error=tls_protocol_error"
                    assert (await response.json())["detail"] == \
                        "The service requires a TLS client certificate, and the proxy sent none."
    finally:
        process.terminate()
        process.wait(timeout=5)
