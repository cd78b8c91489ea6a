"""What `errorproxy check` says of TLS files (config.material), and a failed handshake in words (upstream.tls).

Certificates are made here with trustme and cryptography; none is committed.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from yarl import URL

from proxy.config.material import inspect
from proxy.core.settings import Address, ListenerTLS, Settings, UpstreamSettings, UpstreamTLS
from proxy.upstream.errors import CertificateRejected
from proxy.upstream.tls import failure

NOW = datetime.datetime.now(datetime.timezone.utc)


def _settings(tls: ListenerTLS | None = None, upstream_tls: UpstreamTLS | None = None) -> Settings:
    upstream = UpstreamSettings("app", URL("https://api.example.com"), tls=upstream_tls)
    return Settings(listen=Address("127.0.0.1", 0), upstreams={"app": upstream}, routes=(), tls=tls)


def _pair(folder: Path, ca: trustme.CA, name: str = "leaf", **dates) -> tuple[str, str]:
    leaf = ca.issue_cert("localhost", **dates)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(cert), str(key)


def test_a_good_pair_and_ca_have_nothing_to_say(tmp_path):
    ca = trustme.CA()
    cert, key = _pair(tmp_path, ca)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    report = inspect(_settings(ListenerTLS(cert, key, client_ca=str(tmp_path / "ca.pem"))))
    assert (report.problems, report.warnings) == ([], [])


def test_an_intermediate_chain_in_order(tmp_path):
    intermediate = trustme.CA().create_child_ca()
    cert, key = _pair(tmp_path, intermediate)
    assert inspect(_settings(ListenerTLS(cert, key))).problems == []
    blocks = Path(cert).read_text().split("-----END CERTIFICATE-----\n")[:-1]
    Path(cert).write_text("".join(block + "-----END CERTIFICATE-----\n" for block in reversed(blocks)))
    assert inspect(_settings(ListenerTLS(cert, key))).problems[0].endswith(
        "is not a chain: certificate 1 is not signed by certificate 2 (order: the certificate first, then each issuer)")


def test_problems_name_the_key_and_the_file(tmp_path):
    ca = trustme.CA()
    cert, key = _pair(tmp_path, ca)
    _, other_key = _pair(tmp_path, ca, "other")
    expired_cert, expired_key = _pair(tmp_path, ca, "old", not_before=NOW - datetime.timedelta(days=9),
                                      not_after=NOW - datetime.timedelta(days=1))
    assert inspect(_settings(ListenerTLS(cert, other_key))).problems == [
        f'tls.key: "{other_key}" is not the key of the certificate in tls.cert']
    assert inspect(_settings(ListenerTLS(str(tmp_path / "none.pem"), key))).problems == [
        f'tls.cert: "{tmp_path / "none.pem"}" cannot be read: No such file or directory']
    assert inspect(_settings(ListenerTLS(key, key))).problems == [
        f'tls.cert: "{key}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)']
    problems = inspect(_settings(ListenerTLS(expired_cert, expired_key))).problems
    assert len(problems) == 1 and problems[0].startswith(f'tls.cert: "{expired_cert}" holds a certificate (OU=Testing cert')
    assert "O=trustme" in problems[0] and "that expired on" in problems[0]


def test_an_encrypted_key_is_a_problem(tmp_path):
    ca = trustme.CA()
    cert, key = _pair(tmp_path, ca)
    loaded = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
    Path(key).write_bytes(loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"secret")))
    assert inspect(_settings(ListenerTLS(cert, key))).problems == [
        f'tls.key: "{key}" holds an encrypted key: errorproxy reads unencrypted keys only (openssl pkey -in KEY -out PLAIN)']


def test_warnings_soon_expiring_and_verify_off(tmp_path):
    ca = trustme.CA()
    cert, key = _pair(tmp_path, ca, not_after=NOW + datetime.timedelta(days=5, hours=1))
    report = inspect(_settings(ListenerTLS(cert, key), UpstreamTLS(verify=False)))
    assert report.problems == []
    assert report.warnings[0].startswith(f'tls.cert: "{cert}" holds a certificate (OU=Testing cert')
    assert "that expires in 5 days, on" in report.warnings[0]
    assert report.warnings[1] == ("upstreams.app.tls.verify: false turns certificate checks off: anyone between the "
                                  "proxy and api.example.com can pose as it")


def test_upstream_client_certificate_key_in_the_same_file(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("proxy.example")
    both = tmp_path / "both.pem"
    both.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    assert inspect(_settings(upstream_tls=UpstreamTLS(client_cert=str(both)))).problems == []


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_code = code
    return error


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] something")
    error.reason = reason
    return error


@pytest.mark.parametrize("exc, certificate, words", [
    pytest.param(_verify_error(20), True, "The service's TLS certificate is not trusted (unknown issuer).", id="issuer"),
    pytest.param(_verify_error(18), True, "The service's TLS certificate is not trusted (self-signed).", id="self-signed"),
    pytest.param(_verify_error(10), True, "The service's TLS certificate has expired.", id="expired"),
    pytest.param(_verify_error(62), True, "The service's TLS certificate does not match the name.", id="name"),
    pytest.param(_verify_error(99), True, "The service's TLS certificate was not accepted.", id="other-code"),
    pytest.param(_ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), False,
                 "The service requires a TLS client certificate, and the proxy sent none.", id="cert-required"),
    pytest.param(_ssl_error("TLSV1_ALERT_UNKNOWN_CA"), False,
                 "The service did not accept the proxy's TLS client certificate.", id="client-cert-refused"),
    pytest.param(_ssl_error("WRONG_VERSION_NUMBER"), False, "The service did not answer in TLS (is it plain HTTP?).",
                 id="plain-http"),
    pytest.param(_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), False,
                 "The service and the proxy have no TLS version in common.", id="version"),
    pytest.param(_ssl_error("SOMETHING_NEW"), False, "The TLS handshake with the service failed.", id="unknown"),
    pytest.param(ConnectionResetError(), False, "The service closed the connection during the TLS handshake.",
                 id="reset"),
])
def test_handshake_failures_in_words(exc, certificate, words):
    failed = failure(exc)
    assert (isinstance(failed, CertificateRejected), failed.words) == (certificate, words)
    assert str(exc) in str(failed)  # OpenSSL's own text is the exception's message: for the log
