"""TLS on the listener: one SSLContext for the life of the process, its certificate replaced in place.

    ListenerCertificates(settings.tls)       TLS 1.2+, ALPN http/1.1, client certificates when client_ca is set
      .context ─▶ the server's listening socket, never replaced
      .reload(tls)  on SIGHUP or a watched change: new handshakes get the new certificate,
                    connections already made keep the one they began with

OpenSSL copies the certificate into each connection when it starts, so
loading a new one into the shared context leaves connections in flight alone.
But a load that fails half-way (a new certificate with the old key) leaves
the context with no certificate at all: every handshake after it would fail.
So a reload first reads both files once, into memory, checks that pair in a
scratch context, and only then loads that same pair (never the files again,
which a renewal may be rewriting) into the live one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from typing import Iterator

from ..core.settings import ListenerTLS

log = logging.getLogger("errorproxy")


class ListenerCertificates:
    """The listener's SSLContext (`context`), and its certificate's reload."""

    def __init__(self, tls: ListenerTLS) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        context.options |= ssl.OP_NO_RENEGOTIATION
        if tls.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=tls.client_ca)
        self.loaded = _read(tls)
        _load(context, self.loaded)
        self.context = context
        log.info("listener certificate %s", describe(self.loaded[0]))

    async def reload(self, tls: ListenerTLS) -> None:
        """Load `tls.cert` and `tls.key` again; on any failure (raised) the current certificate stays."""
        pair = await asyncio.to_thread(_read_and_check, tls)
        if pair == self.loaded:
            return
        # In the event loop's thread: no handshake starts while the context changes.
        try:
            _load(self.context, pair)
        except (OSError, ssl.SSLError, ValueError):
            _load(self.context, self.loaded)  # the checked pair failed to load after all: back to the old one
            raise
        self.loaded = pair
        log.info("listener certificate reloaded: %s", describe(pair[0]))


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, and block the event loop.
    raise ValueError("the private key is encrypted; errorproxy reads unencrypted keys only")


def _read(tls: ListenerTLS) -> tuple[bytes, bytes]:
    with open(tls.cert, "rb") as cert, open(tls.key, "rb") as key:
        return cert.read(), key.read()


def _read_and_check(tls: ListenerTLS) -> tuple[bytes, bytes]:
    """The certificate and key as read once, checked to load together."""
    pair = _read(tls)
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), pair)
    return pair


def _load(context: ssl.SSLContext, pair: tuple[bytes, bytes]) -> None:
    with _as_files(pair) as (cert, key):
        context.load_cert_chain(cert, key, password=_no_password)


@contextlib.contextmanager
def _as_files(pair: tuple[bytes, bytes]) -> Iterator[tuple[str, str]]:
    """Paths OpenSSL can open that hold exactly these bytes, in memory where the system allows.

    `load_cert_chain` takes file names only; on Linux an anonymous memory
    file (memfd) serves, so the key is never written to disk.
    """
    if not hasattr(os, "memfd_create"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="errorproxy-tls-") as folder:  # mode 0700
            paths = []
            for name, data in zip(("cert.pem", "key.pem"), pair):
                path = os.path.join(folder, name)
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
                    file.write(data)
                paths.append(path)
            yield paths[0], paths[1]
        return
    fds = []
    try:
        for data in pair:
            fd = os.memfd_create("errorproxy-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, data)
        yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
    finally:
        for fd in fds:
            os.close(fd)


def describe(pem: bytes) -> str:
    """`CN=example.com, serial 1f2e..., expires 2027-03-01` for a PEM chain's first certificate."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return "(unreadable)"
    return f"{cert.subject.rfc4514_string() or '(no subject)'}, serial {cert.serial_number:x}, " \
           f"expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
