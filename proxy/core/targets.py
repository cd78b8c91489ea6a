"""What an upstream target URL says: where to connect, the Host to name, the base path.

Three kinds of target, each with an optional base path that requests go under:

    http://10.0.0.5:8080/v2        TCP                    Host: 10.0.0.5:8080
    https://api.example.com        TCP, then TLS          Host: api.example.com
    unix:/run/app.sock:/v2         the Unix socket        Host: localhost
                                   /run/app.sock

The Unix form is nginx's (`http://unix:/run/app.sock:/v2`, without the
`http://`): the socket path runs to the first colon, and what follows it, if
anything, is the base path. A socket whose path holds a colon cannot be named.

from yarl import URL
>>> url = URL("unix:/run/app.sock:/v2")
>>> dial_key(url), authority(url), base_path(url)
(('/run/app.sock', 0), 'localhost', '/v2')
>>> url = URL("https://api.example.com/base/")
>>> dial_key(url), authority(url), base_path(url)
(('api.example.com', 443), 'api.example.com', '/base')
"""

from __future__ import annotations

from urllib.parse import unquote

from yarl import URL

UNIX_HOST = "localhost"  # the Host a Unix-socket upstream is sent (a route's `host_header: client` keeps the client's)


def is_unix(url: URL) -> bool:
    return url.scheme == "unix"


def split_unix(url: URL) -> tuple[str, str]:
    """The socket path and the base path of a `unix:` URL.

    >>> split_unix(URL("unix:/run/app.sock"))
    ('/run/app.sock', '')
    """
    socket_path, _, base = url.raw_path.partition(":")
    return unquote(socket_path), base.rstrip("/")  # the base path stays as sent, percent-encoded


def dial_key(url: URL) -> tuple[str, int]:
    """What a connection is made to: (host, port), or (socket path, 0) for a Unix socket."""
    if url.scheme == "unix":
        return split_unix(url)[0], 0
    return url.raw_host or "", url.port or (443 if url.scheme == "https" else 80)


def authority(url: URL) -> str:
    """The Host header that names `url`."""
    return UNIX_HOST if url.scheme == "unix" else url.raw_authority


def base_path(url: URL) -> str:
    """The path requests to `url` go under, without its trailing slash ("" for none)."""
    if url.scheme == "unix":
        return split_unix(url)[1]
    return url.raw_path.rstrip("/")
