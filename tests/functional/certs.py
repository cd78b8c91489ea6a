"""Certificates made for a test (trustme), written as PEM files, and servers that use them.

No key is ever committed: each test makes its own CA and certificates in its tmp_path.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trustme
from aiohttp import web


@dataclass
class Issued:
    """A certificate as files: `cert` (the chain), `key`, and both in `pem`."""

    cert: Path
    key: Path
    pem: Path
    serial: int


def issue(ca: trustme.CA, folder: Path, name: str, *hosts: str, **dates) -> Issued:
    """A certificate for `hosts` (default localhost and 127.0.0.1) signed by `ca`, in `folder`/`name`.*"""
    leaf = ca.issue_cert(*(hosts or ("localhost", "127.0.0.1")), **dates)
    issued = Issued(folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.pem", 0)
    issued.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    issued.key.write_bytes(leaf.private_key_pem.bytes())
    issued.pem.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    from cryptography import x509

    issued.serial = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number
    return issued


def ca_file(ca: trustme.CA, folder: Path, name: str = "ca") -> Path:
    path = folder / f"{name}.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return path


def expired(ca: trustme.CA, folder: Path, name: str) -> Issued:
    now = datetime.datetime.now(datetime.timezone.utc)
    return issue(ca, folder, name, not_before=now - datetime.timedelta(days=30),
                 not_after=now - datetime.timedelta(days=1))


def server_context(issued: Issued, *, client_ca: Path | None = None,
                   maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    if maximum is not None:
        context.maximum_version = maximum
    return context


async def serve(app: web.Application, *, ssl_context: ssl.SSLContext | None = None,
                unix: Path | None = None) -> tuple[web.AppRunner, str]:
    """Serve `app` on 127.0.0.1 (TLS with `ssl_context`) or on the Unix socket `unix`; its runner and URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if unix is not None:
        await web.UnixSite(runner, str(unix)).start()
        return runner, f"unix:{unix}"
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


async def run(*command: str, input: bytes = b"", timeout: float = 10) -> tuple[int, str]:
    """Run a command line tool (curl, openssl); its exit status and output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(input), timeout)
    return process.returncode or 0, out.decode(errors="replace")
