"""The validated, immutable configuration that runtime code trusts.

Built only by `loader`; every value here has been checked, so nothing at
request time re-validates it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

from yarl import URL

from .guard_settings import Concurrency
from .status import StatusSet

HostHeader = Literal["upstream", "client"]
DEFAULT_MAX_BODY = 100 * 1024 * 1024
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, scheme: str = "http") -> str:
        """`http://[::1]:8080` for Address("::1", 8080)."""
        return f"{scheme}://{self}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A Unix-domain socket to listen on, written `unix:/run/errorproxy.sock`."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"

    def url(self, scheme: str = "http") -> str:
        """`unix:/run/errorproxy.sock` (what a client connects to; the scheme says nothing here)."""
        return str(self)


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    """TLS on the public listener (the `tls:` block beside `listen`).

    `cert` and `key` are read again on every reload, so a certificate rotates
    without a restart.
    """

    cert: str  # PEM file: the certificate, then its intermediates
    key: str  # PEM file: its private key, unencrypted
    client_ca: str | None = None  # PEM CA bundle: clients must present a certificate it signed (mTLS)
    redirect_from: Address | None = None  # a plain-HTTP listener answering 308 to https
    redirect_port: int | None = None  # the https port Location names; None: the listener's own


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    """How connections to an `https://` upstream are secured (its `tls:` block)."""

    ca_file: str | None = None  # PEM CA bundle trusted instead of the system store
    verify: bool = True  # False: any certificate, any name (logged as a warning at start)
    server_name: str | None = None  # SNI and the name checked; None: the target URL's host
    client_cert: str | None = None  # PEM certificate chain presented to the upstream (mTLS)
    client_key: str | None = None  # its private key; None: in `client_cert`'s file
    min_version: str = "1.2"  # "1.2" or "1.3"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Limits on the client side of the proxy (the downstream connections)."""

    header_timeout: float = 10.0  # a request's headers must arrive whole within this
    keepalive_timeout: float = 75.0  # an idle client connection is closed after this
    max_line_size: int = 8190  # request line and each header line, as nginx's 8k buffers
    max_headers: int = 100
    lingering_time: float = 5.0  # unread request body is drained this long before closing
    shutdown_timeout: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    stop_delay: float = 0.0  # SIGTERM: not ready, yet still accepting, this long before the drain
    body_timeout: float = 60.0  # longest wait for the next bytes of a request body (nginx's client_body_timeout)
    send_timeout: float = 60.0  # longest a write to a client may stay blocked, the client not reading (nginx's)
    idle_poll: float = 200e-6  # longest a worker polls for bytes due soon before it sleeps (upstream/idle_poll.py)


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """How the proxy is operated: admin listener, logs, reloads."""

    admin: Address | None = Address("127.0.0.1", 9901)  # /healthz /readyz /metrics; None: off
    access_log: str = "json"  # json | text | off: one line a request
    watch_config: bool = False  # reload when the config file changes, as on SIGHUP
    ready_needs_upstreams: bool = False  # /readyz also requires every upstream to have a usable target


RETRY_REASONS = ("connect", "reset", "502", "503", "504")  # what `retry_on` may name


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """An active check of each target of an upstream: `GET path`, answered with an `expect` status."""

    path: str = "/"  # sent as is (no base path), with the target's HOST:PORT as Host
    interval: float = 5.0  # from the end of one check to the start of the next
    timeout: float = 1.0  # connect, send and the status line, all within this
    expect: StatusSet = StatusSet(((200, 299),))


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    name: str
    url: URL  # http(s)://HOST[:PORT][/base] or unix:/PATH[:/base] (see core.targets); the first of `targets`
    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # headers, and then each body read, must arrive within this
    max_connections: int = 256  # cap on open connections to this upstream
    idle_timeout: float = 60.0  # a pooled keep-alive connection unused this long is closed
    max_line_size: int = 16384  # response status/header line cap; past it: 502
    targets: tuple[URL, ...] = ()  # every address of this upstream, used round robin; () means (url,)
    eject_for: float = 10.0  # an ejected target is skipped this long (doubled per ejection in a row), then probed
    max_eject_for: float = 60.0  # the doubling stops here
    # Consecutive 5xx answers or failures after connecting that eject a target; 0 (the default): never.
    # Opt-in, as Envoy's outlier detection: upstreams behind this proxy often answer 5xx on purpose.
    eject_after: int = 0
    retries: int = 2  # extra tries of a request, each after a failure `retry_on` names
    retry_backoff: float = 0.05  # first retry delay, doubled on each further try
    retry_on: frozenset[str] = frozenset({"connect"})  # of RETRY_REASONS
    retry_budget: float = 20.0  # percent: retries at most this share of the requests of the last 10s ...
    retry_budget_min: int = 3  # ... or this many, whichever is more
    health_check: HealthCheck | None = None
    max_requests: int | None = None  # requests awaiting this upstream's answer at once; past it: 503
    max_pending: int | None = 1024  # of those, how many more than max_connections (so waiting for one); past it: 503
    tls: UpstreamTLS | None = None  # set for https:// upstreams (and only for them)

    _retry_statuses: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.targets:
            object.__setattr__(self, "targets", (self.url,))
        # Asked of every response: worked out once.
        statuses = frozenset(int(reason) for reason in self.retry_on if reason.isdigit())
        object.__setattr__(self, "_retry_statuses", statuses)

    def retries_status(self, status: int) -> bool:
        """Whether an answer with `status` may be tried again (`retry_on` names it)."""
        return status in self._retry_statuses


@dataclass(frozen=True, slots=True)
class Match:
    """A route's conditions; every one that is set must hold."""

    hosts: tuple[str, ...] = ()  # exact names or "*.example.com", lower case, no port
    path_prefix: str | None = None
    path_regex: re.Pattern[str] | None = None
    methods: frozenset[str] | None = None  # upper case; None is any method


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """One entry of a route's `errors`: conditions on the upstream error, then what to set."""

    status: StatusSet
    body_matches: re.Pattern[str] | None = None
    json_equals: tuple[tuple[str, object], ...] = ()  # (JSON pointer, value) pairs
    header_matches: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (header name, regex) pairs
    type: str | None = None
    title: str | None = None
    detail: str | None = None
    detail_pointer: str | None = None
    extensions: tuple[tuple[str, str], ...] = ()  # (member name, JSON pointer) pairs
    rewrite_status: int | None = None


@dataclass(frozen=True, slots=True)
class SuccessFalse:
    """Legacy mapping: a 200 whose JSON body holds `"success": false` becomes `status`."""

    status: int
    max_body: int = 64 * 1024
    pointer: str = "/success"


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """How a route rewrites errors; inherited from `defaults`, overridable per route."""

    intercept: StatusSet = StatusSet(((400, 599),))
    origins: frozenset[str] = frozenset({"upstream", "proxy"})
    format: str = "auto"  # auto | json | html | text | passthrough
    json_style: str = "problem"  # problem | envelope | custom
    json_template: Mapping[str, object] | None = None
    expose_upstream_detail: bool = True
    field_errors: bool = True  # a 400/422's field errors as one `errors` extension (core/field_errors.py)
    max_error_body: int = 64 * 1024
    rules: tuple[ErrorRule, ...] = ()
    success_false: SuccessFalse | None = None
    _intercepted: frozenset[int] = field(init=False, repr=False, compare=False)
    # The upstream headers a rewrite reads: its body's type and coding, the ETag, and those rules match on.
    read_headers: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Asked on every response: the answer for each status is worked out once.
        rewrites = self.format != "passthrough" and "upstream" in self.origins
        statuses = frozenset(
            status for status in range(100, 1000)
            if rewrites and (status in self.intercept or any(status in rule.status for rule in self.rules))
        )
        object.__setattr__(self, "_intercepted", statuses)
        matched = {name.lower(): name for rule in self.rules for name, _ in rule.header_matches}
        object.__setattr__(self, "read_headers", ("Content-Type", "Content-Encoding", "ETag", *(
            name for lower, name in matched.items() if lower not in ("content-type", "content-encoding", "etag"))))

    def intercepts(self, status: int) -> bool:
        """Whether an upstream response with this status is rewritten (or may be, by a rule)."""
        return status in self._intercepted


CORS_EXPOSED = ("X-Request-ID", "ETag", "Retry-After", "Proxy-Status")  # what a page's script may read of an error
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class Cors:
    """CORS on the errors a route answers itself or rewrites, so a page on another origin can read them.

    Responses passed through unchanged keep the upstream's own CORS headers, or none.
    """

    allow_origins: tuple[str, ...]  # `https://app.example.com`, `https://*.example.com`, or `*` (any)
    allow_credentials: bool = False  # Access-Control-Allow-Credentials: true (never with `*`)
    expose_headers: tuple[str, ...] = ()  # exposed besides CORS_EXPOSED
    preflight: Literal["upstream", "proxy"] = "upstream"  # who answers OPTIONS preflight requests
    max_age: float = 600.0  # preflight: how long a browser may cache the answer
    allow_methods: tuple[str, ...] = CORS_METHODS  # preflight: Access-Control-Allow-Methods
    allow_headers: tuple[str, ...] | None = None  # preflight: None echoes Access-Control-Request-Headers


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A route's maintenance window: switched on by `enabled`, by `file` existing, or on the admin listener."""

    enabled: bool = False
    retry_after: int = 300  # seconds, sent as Retry-After
    message: str | None = None  # the problem's detail; None: the translated stock text
    allow: tuple[IPNetwork, ...] = ()  # clients passed through to the upstream all the same
    file: str | None = None  # maintenance is on while this file exists (looked at once a second at most)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    match: Match
    upstream: UpstreamSettings
    strip_prefix: str | None = None
    host_header: HostHeader = "upstream"
    max_body_size: int | None = DEFAULT_MAX_BODY  # None: no limit
    errors: ErrorPolicy = ErrorPolicy()
    template: str | None = None  # HTML template tried first for this route's errors
    concurrency: Concurrency | None = None  # the conflict guard; None: off
    cors: Cors | None = None  # CORS headers on its errors; None: none added
    maintenance: Maintenance = Maintenance()


@dataclass(frozen=True, slots=True)
class Settings:
    listen: Address | UnixAddress
    upstreams: Mapping[str, UpstreamSettings]
    routes: tuple[Route, ...]
    server: ServerSettings = ServerSettings()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    allow_underscores_in_headers: bool = False  # forward request headers whose names hold `_` (nginx drops them)
    source: str = "<embedded>"
    ops: OpsSettings = OpsSettings()
    errors: ErrorPolicy = ErrorPolicy()  # the `defaults` policy, for requests no route matches
    cors: Cors | None = None  # the `defaults` block, for requests no route matches
    brand: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    templates_dir: str | None = None  # files here override the built-in templates one by one
    messages: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))  # language -> {id: text}
    tls: ListenerTLS | None = None  # TLS on `listen`
    listen_mode: int | None = None  # file mode of a Unix-socket `listen`; None: as the umask leaves it
