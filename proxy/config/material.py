"""Whether the TLS files a config names are usable, read with `cryptography`.

    problems: the config is refused              warnings: it runs; logged at start and reload,
                                                  and printed by `errorproxy check`
    a file that cannot be read                    a certificate that expires within 14 days
    no PEM certificate, or no key, in it          a CA certificate that has expired
    a key that is encrypted                       `verify: false` on an upstream
    a key that is not the certificate's
    a chain whose certificates do not sign one another
    a certificate that has expired, or is not valid yet

Each line names the key that names the file, as the loader's problems do:

    tls.key: "/etc/errorproxy/key.pem" is not the key of the certificate in tls.cert
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..core.settings import Settings
from .values import show

EXPIRY_WARNING = datetime.timedelta(days=14)
MAX_PEM = 10 * 1024 * 1024  # a CA bundle is at most a few hundred KiB; past this it is another file


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fail(self, path: str, value: str, message: str) -> None:
        self.problems.append(f"{path}: {show(value)} {message}")

    def warn(self, path: str, value: object, message: str) -> None:
        self.warnings.append(f"{path}: {show(value)} {message}")


def inspect(settings: Settings, now: datetime.datetime | None = None) -> Report:
    """Every problem and warning of the TLS material `settings` names."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    report = Report()
    if settings.tls is not None:
        tls = settings.tls
        _certificate_and_key(report, now, "tls.cert", tls.cert, "tls.key", tls.key)
        if tls.client_ca is not None:
            _ca_bundle(report, now, "tls.client_ca", tls.client_ca)
    for upstream in settings.upstreams.values():
        tls = upstream.tls
        if tls is None:
            continue
        where = f"upstreams.{upstream.name}.tls"
        if not tls.verify:
            report.warn(f"{where}.verify", False, "turns certificate checks off: anyone between the proxy and "
                        f"{upstream.url.host} can pose as it")
        if tls.ca_file is not None:
            _ca_bundle(report, now, f"{where}.ca_file", tls.ca_file)
        if tls.client_cert is not None:
            key_path, key_file = (f"{where}.client_key", tls.client_key) if tls.client_key else \
                                 (f"{where}.client_cert", tls.client_cert)
            _certificate_and_key(report, now, f"{where}.client_cert", tls.client_cert, key_path, key_file)
    return report


def _read(report: Report, path: str, file: str) -> bytes | None:
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_PEM + 1)
    except OSError as exc:
        report.fail(path, file, f"cannot be read: {exc.strerror or type(exc).__name__}")
        return None
    if len(data) > MAX_PEM:
        report.fail(path, file, "is larger than 10MiB, so not a PEM file")
        return None
    return data


def _certificates(report: Report, path: str, file: str) -> list[x509.Certificate] | None:
    data = _read(report, path, file)
    if data is None:
        return None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        report.fail(path, file, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        return None


def _certificate_and_key(report: Report, now: datetime.datetime, cert_path: str, cert_file: str,
                         key_path: str, key_file: str) -> None:
    chain = _certificates(report, cert_path, cert_file)
    if chain is not None:
        _validity(report, now, cert_path, cert_file, chain[0], leaf=True)
        for index, (cert, issuer) in enumerate(zip(chain, chain[1:])):
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                report.fail(cert_path, cert_file, f"is not a chain: certificate {index + 1} is not signed by "
                            f"certificate {index + 2} (order: the certificate first, then each issuer)")
                break
    data = _read(report, key_path, key_file)
    if data is None:
        return
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        report.fail(key_path, key_file, "holds an encrypted key: errorproxy reads unencrypted keys only "
                    "(openssl pkey -in KEY -out PLAIN)")
        return
    except (ValueError, UnsupportedAlgorithm):
        report.fail(key_path, key_file, "holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
        return
    if chain is not None and _public(key.public_key()) != _public(chain[0].public_key()):
        report.fail(key_path, key_file, f"is not the key of the certificate in {cert_path}")


def _ca_bundle(report: Report, now: datetime.datetime, path: str, file: str) -> None:
    certificates = _certificates(report, path, file)
    for cert in certificates or ():
        _validity(report, now, path, file, cert, leaf=False)


def _validity(report: Report, now: datetime.datetime, path: str, file: str, cert: x509.Certificate,
              leaf: bool) -> None:
    name = cert.subject.rfc4514_string() or "(no subject)"
    ends, starts = cert.not_valid_after_utc, cert.not_valid_before_utc
    if now < starts:
        report.fail(path, file, f"holds a certificate ({name}) not valid until {starts:%Y-%m-%d %H:%M} UTC")
    elif now > ends:
        message = f"holds a certificate ({name}) that expired on {ends:%Y-%m-%d %H:%M} UTC"
        if leaf:
            report.fail(path, file, message)
        else:
            report.warn(path, file, message)
    elif ends - now < EXPIRY_WARNING:
        days = (ends - now).days
        report.warn(path, file, f"holds a certificate ({name}) that expires in {days} day{'s' * (days != 1)}, "
                    f"on {ends:%Y-%m-%d %H:%M} UTC")


def _public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
