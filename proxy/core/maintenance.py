"""Maintenance mode: whether a request is answered 503 instead of forwarded, and who passes anyway.

A route is in maintenance while any one of these holds, the first naming the window:

    a switch on the admin listener    POST /maintenance (every route) or ?route=NAME (that one)
    its config                        maintenance: {enabled: true}
    a file                            maintenance: {file: /etc/errorproxy/maintenance} exists

Clients whose address is in the route's `allow` list (operators checking a
deploy) are forwarded all the same. Their address is the peer's, or, when the
peer is one of `trusted_proxies`, the nearest address in X-Forwarded-For that
is not a trusted proxy (nginx's `real_ip_recursive`): a client cannot slip in
by writing an allowed address into the header itself.

>>> from proxy.core.settings import Maintenance
>>> window("api", Maintenance(retry_after=120), {GLOBAL: Switch(message="Back at 14:00")}, file_present=False)
Window(source='admin', retry_after=120, message='Back at 14:00')
>>> window("api", Maintenance(), {}, file_present=False) is None
True
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

from .settings import IPNetwork, Maintenance

GLOBAL = "*"  # the key of the switch that covers every route
STATE_DIR = "ERRORPROXY_STATE_DIR"  # the directory switches are kept in, shared by worker processes
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Switch:
    """Maintenance switched on at run time (the admin listener): for every route, or for one."""

    retry_after: int | None = None  # seconds; None: the route's own `retry_after`
    message: str | None = None  # None: the route's own `message`
    since: float = 0.0  # Unix time it was switched on, for /readyz and GET /maintenance


@dataclass(frozen=True, slots=True)
class Window:
    """A route in maintenance: what switched it on, and what its clients are told."""

    source: Literal["admin", "config", "file"]
    retry_after: int
    message: str | None


def window(route: str, settings: Maintenance, switches: Mapping[str, Switch], file_present: bool) -> Window | None:
    """The maintenance window `route` is in, or None.

    A switch for the route itself comes before the global one; values a
    switch leaves out are the route's config.

    >>> from proxy.core.settings import Maintenance
    >>> config = Maintenance(retry_after=60, message="Upgrading")
    >>> window("api", config, {"api": Switch(retry_after=600), GLOBAL: Switch(retry_after=5)}, False)
    Window(source='admin', retry_after=600, message='Upgrading')
    >>> window("site", Maintenance(file="/run/m"), {}, file_present=True)
    Window(source='file', retry_after=300, message=None)
    """
    switch = switches.get(route) or switches.get(GLOBAL)
    if switch is not None:
        return Window("admin", switch.retry_after if switch.retry_after is not None else settings.retry_after,
                      switch.message if switch.message is not None else settings.message)
    if settings.enabled:
        return Window("config", settings.retry_after, settings.message)
    if settings.file is not None and file_present:
        return Window("file", settings.retry_after, settings.message)
    return None


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[IPNetwork, ...]) -> IPAddress | None:
    """The client's address: the peer's, or behind trusted proxies the nearest untrusted hop.

    X-Forwarded-For is read from the right (the hop nearest the proxy), past
    every trusted address; the first untrusted one is the client. Only a
    trusted peer's header is read at all. An unreadable entry ends the walk
    with no address, so it is allowed nowhere.

    >>> net = (ipaddress.ip_network("10.0.0.0/8"),)
    >>> str(client_address("10.0.0.2", ["203.0.113.7, 10.0.0.9"], net))
    '203.0.113.7'
    >>> str(client_address("198.51.100.1", ["10.0.0.5"], net))  # an untrusted peer's header is its own say
    '198.51.100.1'
    >>> client_address("10.0.0.2", ["nonsense"], net) is None
    True
    """
    address = _address(peer)
    if address is None or not _within(address, trusted):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        address = _address(hop)
        if address is None or not _within(address, trusted):
            return address
    return address  # every hop is a trusted proxy: the farthest one is the client


def passes(settings: Maintenance, client: IPAddress | None) -> bool:
    """Whether `client` is one the route lets through during maintenance (its `allow` list).

    >>> settings = Maintenance(allow=(ipaddress.ip_network("192.0.2.0/24"),))
    >>> passes(settings, ipaddress.ip_address("192.0.2.10")), passes(settings, None)
    (True, False)
    """
    return client is not None and _within(client, settings.allow)


def _address(text: str | None) -> IPAddress | None:
    if not text or len(text) > 64:  # longer is no address (IPv6 with a zone is under 64)
        return None
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address  # ::ffff:10.0.0.5 is 10.0.0.5 on a dual-stack socket


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)
