"""Bodies stream through without being buffered: a gigabyte each way in bounded memory."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_yaml

GIB = 1024**3
CHUNK = b"".join(bytes([i % 251]) for i in range(256 * 1024))  # 256 KiB, not all one byte
RSS_LIMIT_KIB = 150 * 1024

pytestmark = pytest.mark.slow


def _expected_digest(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // len(CHUNK)):
        digest.update(CHUNK)
    return digest.hexdigest()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gigabyte_download_streams_in_bounded_memory(aiohttp_server, start_proxy, framing):
    async def download(request):
        response = web.StreamResponse()
        if framing == "content-length":
            response.content_length = GIB
        await response.prepare(request)
        for _ in range(GIB // len(CHUNK)):
            await response.write(CHUNK)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/big", download)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url(""))))
    digest = hashlib.sha256()
    received = 0
    async with aiohttp.ClientSession() as client:
        async with client.get(proxy.url + "/big") as response:
            assert response.status == 200
            if framing == "chunked":
                assert response.headers["Transfer-Encoding"] == "chunked"
            else:
                assert response.headers["Content-Length"] == str(GIB)
            async for piece in response.content.iter_chunked(1 << 20):
                received += len(piece)
                digest.update(piece)
    assert received == GIB
    assert digest.hexdigest() == _expected_digest(GIB)
    assert proxy.peak_rss_kib() < RSS_LIMIT_KIB


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gigabyte_upload_streams_in_bounded_memory(aiohttp_server, start_proxy, framing):
    seen = {}

    async def sink(request):
        digest = hashlib.sha256()
        size = 0
        async for piece in request.content.iter_chunked(1 << 20):
            size += len(piece)
            digest.update(piece)
        seen.update(size=size, digest=digest.hexdigest(), chunked=request.headers.get("Transfer-Encoding"))
        return web.Response(text=str(size))

    async def body():
        for _ in range(GIB // len(CHUNK)):
            yield CHUNK

    app = web.Application(client_max_size=2 * GIB)
    app.router.add_put("/upload", sink)
    server = await aiohttp_server(app)
    proxy = await start_proxy(config_yaml(str(server.make_url("")), route="max_body_size: 2GiB"))
    headers = {"Content-Length": str(GIB)} if framing == "content-length" else {}
    async with aiohttp.ClientSession() as client:
        async with client.put(proxy.url + "/upload", data=body(), headers=headers) as response:
            assert response.status == 200
            assert await response.text() == str(GIB)
    assert seen["size"] == GIB
    assert seen["digest"] == _expected_digest(GIB)
    assert seen["chunked"] == ("chunked" if framing == "chunked" else None)
    assert proxy.peak_rss_kib() < RSS_LIMIT_KIB
