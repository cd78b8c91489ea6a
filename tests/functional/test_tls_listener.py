"""TLS on the listener, seen by curl and `openssl s_client`: versions, ALPN, client certificates,
rotation on SIGHUP and on a watched change, the redirect from plain HTTP, and workers."""

from __future__ import annotations

import asyncio
import datetime
import re
import signal
import ssl
import sys
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from ..conftest import config_yaml
from .certs import Issued, ca_file, issue, run, serve


@pytest.fixture
def http_parser() -> str:
    return "c-parser"  # past the request parser: once is enough


@pytest.fixture
async def upstream_url():
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"proto": request.headers.get("X-Forwarded-Proto"), "path": request.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, url = await serve(app)
    yield url
    await runner.cleanup()


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


def _tls(listener: Issued, extra: str = "") -> str:
    return f"tls: {{cert: {listener.cert}, key: {listener.key}{extra}}}"


async def _s_client(port: int, ca: Path, *args: str) -> str:
    _, out = await run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                       "-CAfile", str(ca), "-alpn", "http/1.1", *args, input=b"Q\n")
    return out


def _serial(s_client_output: str, ca: Path) -> int:
    """The serial of the certificate s_client printed (via `openssl x509`)."""
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", s_client_output, re.S)
    assert pem, s_client_output
    import subprocess

    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.group(0).encode(),
                         capture_output=True, check=True).stdout.decode()
    return int(out.strip().split("=")[1], 16)


async def test_curl_and_openssl_see_tls_12_plus_with_alpn_and_forwarded_proto(tmp_path, upstream_url, start_proxy):
    ca = trustme.CA()
    trusted = ca_file(ca, tmp_path)
    proxy = await start_proxy(config_yaml(upstream_url, top=_tls(issue(ca, tmp_path, "listener"))))
    assert proxy.url.startswith("https://")
    status, out = await run("curl", "-sS", "--cacert", str(trusted), proxy.url + "/a?b=1")
    assert status == 0, out
    assert out == '{"proto": "https", "path": "/a?b=1"}'
    out = await _s_client(proxy.port, trusted, "-brief")
    assert "ALPN protocol: http/1.1" in out or "ALPN protocol: http/1.1" in await _s_client(proxy.port, trusted)
    assert "Verification: OK" in out
    old = await _s_client(proxy.port, trusted, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert "Cipher is (NONE)" in old or "alert protocol version" in old or "no protocols available" in old, old


async def test_client_certificates_required_with_client_ca(tmp_path, upstream_url, start_proxy):
    ca, clients = trustme.CA(), trustme.CA()
    trusted = ca_file(ca, tmp_path)
    proxy = await start_proxy(config_yaml(
        upstream_url, top=_tls(issue(ca, tmp_path, "listener"), f", client_ca: {ca_file(clients, tmp_path, 'clients')}")))
    good = issue(clients, tmp_path, "client", "sidecar.example")
    status, out = await run("curl", "-sS", "--cacert", str(trusted), "--cert", str(good.cert), "--key", str(good.key),
                            proxy.url + "/")
    assert (status, out) == (0, '{"proto": "https", "path": "/"}')
    status, out = await run("curl", "-sS", "--cacert", str(trusted), proxy.url + "/")
    assert status != 0, "no client certificate: the handshake fails"
    wrong = issue(trustme.CA(), tmp_path, "stranger", "sidecar.example")
    status, out = await run("curl", "-sS", "--cacert", str(trusted), "--cert", str(wrong.cert), "--key", str(wrong.key),
                            proxy.url + "/")
    assert status != 0, "a client certificate from another CA: the handshake fails"


async def _kept_alive_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
    return head.split(b" ", 2)[1] + b" " + await reader.readexactly(length)


@pytest.mark.parametrize("how", ["sighup", "watch_config"])
async def test_certificate_rotates_without_disturbing_open_connections(tmp_path, upstream_url, start_proxy, how):
    ca = trustme.CA()
    trusted = ca_file(ca, tmp_path)
    first = issue(ca, tmp_path, "listener")
    watch = "\nwatch_config: true" if how == "watch_config" else ""
    proxy = await start_proxy(config_yaml(upstream_url, top=_tls(first) + watch))
    assert _serial(await _s_client(proxy.port, trusted), trusted) == first.serial
    # A connection opened before the rotation, kept alive across it.
    context = ssl.create_default_context(cafile=str(trusted))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=context, server_hostname="localhost")
    try:
        assert (await _kept_alive_get(reader, writer, "/before")).startswith(b"200 ")
        second = issue(ca, tmp_path, "next")
        first.cert.write_bytes(second.cert.read_bytes())
        first.key.write_bytes(second.key.read_bytes())
        if how == "sighup":
            proxy.process.send_signal(signal.SIGHUP)
        await _until(lambda: "listener certificate reloaded" in proxy.log(), "certificate reload")
        assert _serial(await _s_client(proxy.port, trusted), trusted) == second.serial
        assert (await _kept_alive_get(reader, writer, "/after")).startswith(b"200 ")
        peer = writer.get_extra_info("ssl_object").getpeercert()
        assert int(peer["serialNumber"], 16) == first.serial  # still the connection of before
    finally:
        writer.close()
    # A broken pair (the certificate without its key) is refused; the last good one serves on.
    refused = proxy.log().count("is not the key of the certificate in tls.cert")
    first.cert.write_bytes(issue(ca, tmp_path, "third").cert.read_bytes())
    proxy.process.send_signal(signal.SIGHUP)
    await _until(lambda: proxy.log().count("is not the key of the certificate in tls.cert") > refused, "refused reload")
    assert _serial(await _s_client(proxy.port, trusted), trusted) == second.serial


async def test_plain_http_listener_redirects_to_https(tmp_path, upstream_url, start_proxy):
    ca = trustme.CA()
    proxy = await start_proxy(config_yaml(
        upstream_url, top=_tls(issue(ca, tmp_path, "listener"), ", redirect_from: 127.0.0.1:0")))
    redirect = re.search(r"redirecting (http://\S+) to https", proxy.log()).group(1)
    status, out = await run("curl", "-sS", "-i", "-X", "POST", "-H", "Host: Example.com:8080", redirect + "/a?b=1")
    assert status == 0
    assert out.startswith("HTTP/1.1 308 ")
    assert f"Location: https://example.com:{proxy.port}/a?b=1\r\n" in out
    assert "\nServer:" not in out
    status, out = await run("curl", "-sS", "-i", "-H", "Host: evil/../x", redirect + "/")
    assert out.startswith("HTTP/1.1 400 ")


async def test_workers_each_serve_tls(tmp_path, upstream_url, start_proxy):
    ca = trustme.CA()
    trusted = ca_file(ca, tmp_path)
    proxy = await start_proxy(config_yaml(upstream_url, top=_tls(issue(ca, tmp_path, "listener"))),
                              args=("--workers", "2"))
    for _ in range(4):
        status, out = await run("curl", "-sS", "--cacert", str(trusted), proxy.url + "/")
        assert (status, out) == (0, '{"proto": "https", "path": "/"}')


async def test_check_reports_tls_material_with_its_config_path(tmp_path):
    ca = trustme.CA()
    soon = issue(ca, tmp_path, "soon", not_after=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3))
    other = issue(ca, tmp_path, "other")
    config = tmp_path / "proxy.yaml"

    async def check(tls: str) -> tuple[int, str]:
        config.write_text(config_yaml("http://127.0.0.1:9", top=tls))
        return await run(sys.executable, "-m", "proxy", "check", "--config", str(config))

    status, out = await check(_tls(soon))
    assert status == 0, out
    assert f'{config}: warning: tls.cert: "{soon.cert}" holds a certificate (' in out
    assert "that expires in 2 days" in out
    status, out = await check(f"tls: {{cert: {soon.cert}, key: {other.key}}}")
    assert status == 1
    assert f'{config}: tls.key: "{other.key}" is not the key of the certificate in tls.cert' in out
