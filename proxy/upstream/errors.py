"""What can go wrong talking to an upstream; `upstream.map_failure` turns each into a status.

    UpstreamFailure
    ├── ConnectFailed      the connection could not be made (refused, unreachable, no address)
    ├── ConnectTimeout     it was not made within connect_timeout
    ├── TLSFailed          the TLS handshake failed; `words` say why, for the client
    │   └── CertificateRejected  the upstream's certificate did not verify
    ├── PoolTimeout        no connection came free within connect_timeout + read_timeout
    ├── ReadTimeout        nothing arrived for read_timeout
    ├── Malformed          the response is not valid HTTP/1.1
    ├── HeadersTooLarge    a header line longer than max_line_size
    └── Disconnected       the connection ended before the response did
"""

from __future__ import annotations


class UpstreamFailure(Exception):
    """Talking to the upstream failed; the message is for the log, never the client."""


class ConnectFailed(UpstreamFailure):
    def __init__(self, os_error: OSError) -> None:
        super().__init__(f"{type(os_error).__name__}: {os_error}")
        self.os_error = os_error


class ConnectTimeout(UpstreamFailure):
    pass


class TLSFailed(UpstreamFailure):
    """The TLS handshake failed: the message (OpenSSL's) is logged, `words` are sent."""

    def __init__(self, message: str, words: str) -> None:
        super().__init__(message)
        self.words = words
        self.request_sent = False  # True for an alert that came instead of a response


class CertificateRejected(TLSFailed):
    pass


class PoolTimeout(UpstreamFailure):
    pass


class ReadTimeout(UpstreamFailure):
    pass


class Malformed(UpstreamFailure):
    pass


class HeadersTooLarge(UpstreamFailure):
    pass


class Disconnected(UpstreamFailure):
    pass
