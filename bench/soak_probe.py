"""What /proc says about the proxy during a soak: memory, open files, connections to the upstream.

A proxy is a process tree (the supervisor and its workers with `--workers N`);
every reading is summed over the tree. Upstream connections are the TCP sockets
the tree holds open (found by inode, from /proc/PID/fd) whose remote end is the
upstream's port, by state from /proc/net/tcp and /proc/net/tcp6.

`parse_tcp`, `count_to_port` and `upstream_errors` (of /metrics) are pure, for the unit tests; `read` does the I/O.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .procs import tree

# /proc/net/tcp's `st` column (include/net/tcp_states.h).
TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}


@dataclass(frozen=True)
class TcpSocket:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str  # "ESTABLISHED", "CLOSE_WAIT", ...
    inode: int


def _address(field: str) -> tuple[str, int]:
    """A /proc/net/tcp{,6} address: hex IP in the kernel's byte order, then a hex port.

    >>> _address("0100007F:1F90")
    ('127.0.0.1', 8080)
    >>> _address("0000000000000000FFFF00000100007F:0050")  # an IPv4-mapped IPv6 address
    ('127.0.0.1', 80)
    """
    host, port = field.split(":")
    raw = bytes.fromhex(host)
    # Each 32-bit word is printed in host order (little-endian here): reverse word by word.
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def parse_tcp(text: str) -> list[TcpSocket]:
    """The sockets listed in the text of /proc/net/tcp or /proc/net/tcp6 (header line skipped).

    >>> parse_tcp('''  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
    ...    0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4242 1''')
    [TcpSocket(local=('127.0.0.1', 40000), remote=('127.0.0.1', 8080), state='ESTABLISHED', inode=4242)]
    """
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        sockets.append(TcpSocket(_address(fields[1]), _address(fields[2]),
                                 TCP_STATES.get(fields[3].upper(), fields[3]), int(fields[9])))
    return sockets


def count_to_port(sockets: list[TcpSocket], inodes: set[int], port: int,
                  host: str = "127.0.0.1") -> dict[str, int]:
    """How many of the sockets with these inodes connect to host:port, by state.

    Inode 0 marks a socket no process holds any more (TIME_WAIT): never counted.

    >>> up = TcpSocket(("127.0.0.1", 40000), ("127.0.0.1", 8080), "ESTABLISHED", 7)
    >>> count_to_port([up], {7}, 8080), count_to_port([up], {8}, 8080)
    ({'ESTABLISHED': 1}, {})
    """
    counts: dict[str, int] = {}
    for sock in sockets:
        if sock.inode and sock.inode in inodes and sock.remote == (host, port):
            counts[sock.state] = counts.get(sock.state, 0) + 1
    return counts


_UPSTREAM_ERROR = re.compile(r'^errorproxy_upstream_errors_total\{([^}]*)\}\s+(\S+)', re.MULTILINE)
_KIND = re.compile(r'kind="([^"]*)"')


def upstream_errors(metrics: str) -> dict[str, int]:
    r"""errorproxy_upstream_errors_total from the admin listener's /metrics text, summed by kind.

    >>> upstream_errors('errorproxy_upstream_errors_total{kind="connection_refused",upstream="app"} 3.0\n'
    ...                 'errorproxy_upstream_errors_created{kind="connection_refused",upstream="app"} 1.7e9\n')
    {'connection_refused': 3}
    """
    counts: dict[str, int] = {}
    for labels, value in _UPSTREAM_ERROR.findall(metrics):
        kind = _KIND.search(labels)
        name = kind.group(1) if kind else "?"
        counts[name] = counts.get(name, 0) + int(float(value))
    return counts


@dataclass(frozen=True)
class Reading:
    pids: tuple[int, ...]
    rss_kib: int  # VmRSS summed over the tree
    rss_max_kib: int  # of the largest process
    fds: int  # open file descriptors, summed over the tree
    upstream: dict[str, int]  # the tree's sockets to the upstream port, by state


def read(root: int, upstream_port: int) -> Reading:
    """RSS, fds and upstream sockets of `root` and its descendants, as they are now."""
    pids = tuple(sorted(tree(root)))
    rss = [kib for kib in (_rss_kib(pid) for pid in pids) if kib is not None]
    fds = 0
    inodes: set[int] = set()
    for pid in pids:
        fds += _socket_inodes(pid, inodes)
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            sockets += parse_tcp(Path(f"/proc/net/{name}").read_text())
        except OSError:
            pass
    return Reading(pids, sum(rss), max(rss, default=0), fds, count_to_port(sockets, inodes, upstream_port))


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _socket_inodes(pid: int, into: set[int]) -> int:
    """Adds the inodes of `pid`'s sockets to `into`; returns how many fds it has open."""
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue  # closed between the listing and the look
        if target.startswith("socket:["):
            into.add(int(target[8:-1]))
    return len(names)
