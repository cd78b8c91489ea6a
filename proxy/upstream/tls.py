"""TLS to upstreams: the client context of an `https://` upstream, and failed handshakes in words.

One `ssl.SSLContext` an upstream, made with its pool and shared by its
WebSocket session: certificates verified against the system store (or the
upstream's `ca_file` instead), the name checked (the URL's host, or
`server_name`), TLS 1.2 at least, ALPN `http/1.1`, and a client certificate
when the upstream asks for one (mTLS).

A failed handshake reaches the client as a 502 whose detail says what failed,
in words it can act on; OpenSSL's own text goes to the log only:

>>> import ssl
>>> error = ssl.SSLCertVerificationError(1, "certificate verify failed")
>>> error.verify_code = 10  # X509_V_ERR_CERT_HAS_EXPIRED
>>> failure(error).words
"The service's TLS certificate has expired."
"""

from __future__ import annotations

import ssl

from ..core.settings import UpstreamTLS
from .errors import CertificateRejected, TLSFailed

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def client_context(tls: UpstreamTLS) -> ssl.SSLContext:
    """The context every connection to one `https://` upstream is made with.

    Reads `ca_file`, `client_cert` and `client_key`; the loader has checked
    they are readable and match, so an OSError or SSLError here means they
    changed since.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the name
    context.minimum_version = VERSIONS[tls.min_version]
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls.ca_file is not None:
        context.load_verify_locations(cafile=tls.ca_file)  # instead of the system store, as curl's --cacert
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if tls.client_cert is not None:
        context.load_cert_chain(tls.client_cert, tls.client_key, password=_no_password)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, and block the event loop.
    raise ValueError("the private key is encrypted; errorproxy reads unencrypted keys only")


def server_name(tls: UpstreamTLS, host: str) -> str:
    """The name sent as SNI and checked against the certificate."""
    return tls.server_name or host


# X509_V_ERR_* codes (OpenSSL's x509_vfy.h) as a client can act on them.
_UNTRUSTED = "is not trusted (unknown issuer)"
_VERIFY_WORDS = {
    2: _UNTRUSTED,  # UNABLE_TO_GET_ISSUER_CERT
    20: _UNTRUSTED,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: _UNTRUSTED,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    18: "is not trusted (self-signed)",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "is not trusted (self-signed issuer)",  # SELF_SIGNED_CERT_IN_CHAIN
    9: "is not valid yet",  # CERT_NOT_YET_VALID
    10: "has expired",  # CERT_HAS_EXPIRED
    23: "has been revoked",  # CERT_REVOKED
    7: "has an invalid signature",  # CERT_SIGNATURE_FAILURE
    24: "has an issuer that is not a CA",  # INVALID_CA
    26: "is not meant for a server",  # INVALID_PURPOSE
    62: "does not match the name",  # HOSTNAME_MISMATCH
    64: "does not match the address",  # IP_ADDRESS_MISMATCH
}

# OpenSSL reason codes of a failed handshake, first match wins.
_CLIENT_CERT_REFUSED = "The service did not accept the proxy's TLS client certificate."
_REASON_WORDS = (
    ("CERTIFICATE_REQUIRED", "The service requires a TLS client certificate, and the proxy sent none."),
    ("UNKNOWN_CA", _CLIENT_CERT_REFUSED),
    ("BAD_CERTIFICATE", _CLIENT_CERT_REFUSED),
    ("CERTIFICATE_UNKNOWN", _CLIENT_CERT_REFUSED),
    ("CERTIFICATE_EXPIRED", _CLIENT_CERT_REFUSED),
    ("CERTIFICATE_REVOKED", _CLIENT_CERT_REFUSED),
    ("ACCESS_DENIED", _CLIENT_CERT_REFUSED),
    ("WRONG_VERSION_NUMBER", "The service did not answer in TLS (is it plain HTTP?)."),
    ("PROTOCOL_VERSION", "The service and the proxy have no TLS version in common."),
    ("UNSUPPORTED_PROTOCOL", "The service and the proxy have no TLS version in common."),
    ("NO_PROTOCOLS_AVAILABLE", "The service and the proxy have no TLS version in common."),
    ("HANDSHAKE_FAILURE", "The service refused the TLS handshake (it may require a client certificate, "
                          "or share no cipher with the proxy)."),
    ("NO_SHARED_CIPHER", "The service and the proxy have no TLS cipher in common."),
)
_CLOSED = "The service closed the connection during the TLS handshake."


def failure(exc: OSError) -> TLSFailed:
    """The TLSFailed for an exception raised by a TLS handshake (or by the alert that followed it).

    >>> failure(ConnectionResetError()).words
    'The service closed the connection during the TLS handshake.'
    """
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        words = _VERIFY_WORDS.get(exc.verify_code, "was not accepted")
        return CertificateRejected(message, f"The service's TLS certificate {words}.")
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        reason = exc.reason or ""
        for key, words in _REASON_WORDS:
            if key in reason:
                return TLSFailed(message, words)
        return TLSFailed(message, "The TLS handshake with the service failed.")
    return TLSFailed(message, _CLOSED)  # reset, or an EOF in the middle of the handshake
