"""The problem collector every config section is checked with.

Each method converts one value and returns something usable (the value, or a
fallback, or None), recording a `path: value message` line for anything wrong,
so one pass over a file reports every problem in it:

>>> from proxy.config.values import read_count
>>> check = Checker()
>>> check.convert("upstreams.app.retries", "2KiB", read_count) is None
True
>>> check.problems
['upstreams.app.retries: "2KiB" is not a whole number']
"""

from __future__ import annotations

import ipaddress
import re
import re._constants as _sre  # the parsed form of a pattern, to see how its repeats nest
import re._parser as _sre_parse
import warnings
from typing import Any, Callable, Collection, Mapping, Sequence, TypeVar

from ..core.settings import Address, IPNetwork
from .values import key_path, short_path, show

T = TypeVar("T")
Converter = Callable[[object], Any]  # raises ValueError whose text ends the problem line

HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")

def _repeat_depth(items) -> int:
    """How deep repeats of more than one (`+`, `*`, `{2,}`, ...) nest in a parsed pattern; a
    possessive one does not backtrack and does not count.

    >>> [_repeat_depth(_sre_parse.parse(p)) for p in ("ab", "a+b*", "(a+)+", "(?:x|(a*))*", "(a+)?", "(a++)+")]
    [0, 1, 2, 2, 1, 1]
    """
    depth = 0
    for op, value in items:
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            low, high, sub = value
            inner = _repeat_depth(sub) + (1 if high > 1 else 0)
        elif op is _sre.SUBPATTERN:
            inner = _repeat_depth(value[-1])
        elif op is _sre.BRANCH:
            inner = max((_repeat_depth(branch) for branch in value[1]), default=0)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT, _sre.ATOMIC_GROUP):
            inner = _repeat_depth(value[-1])
        elif op is _sre.GROUPREF_EXISTS:
            inner = max(_repeat_depth(value[1]), _repeat_depth(value[2]) if value[2] is not None else 0)
        else:
            inner = 0
        depth = max(depth, inner)
    return depth


class Checker:
    """Collects problems as it converts; each method returns a usable fallback."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, value: Any, message: str) -> None:
        self.problems.append(f"{short_path(path)}: {show(value)} {message}")

    def missing(self, path: str, why: str) -> None:
        self.problems.append(f"{short_path(path)}: missing: {why}")

    def mapping(self, path: str, value: Any, allowed: Collection[str] | None, *,
                required: bool = False) -> dict[str, Any]:
        """The entries of `value` with a known string key; an unknown one is reported with the known ones."""
        where = path or "(top level)"
        if value is None and not required:
            return {}
        if not isinstance(value, dict) or (required and not value):
            self.problems.append(f"{where}: {show(value)} " + ("must be a non-empty mapping" if required else "must be a mapping"))
            return {}
        for key in value:
            if not isinstance(key, str) or (allowed is not None and key not in allowed):
                known = f" (known keys: {', '.join(sorted(allowed))})" if allowed else ""
                self.problems.append(f"{short_path(key_path(path, key))}: unknown key{known}")
        return {k: v for k, v in value.items() if isinstance(k, str) and (allowed is None or k in allowed)}

    def flag(self, path: str, value: Any) -> bool | None:
        """`value` when it is true or false; else None, reported."""
        if isinstance(value, bool):
            return value
        self.fail(path, value, "must be true or false")
        return None

    def choice(self, path: str, value: Any, choices: Sequence[Any]) -> Any:
        """`value` when it is one of `choices` (a boolean is none of them); else None, reported
        as `must be a, b or c`."""
        if value in choices and not isinstance(value, bool):
            return value
        names = [str(choice) for choice in choices]
        self.fail(path, value, f"must be {', '.join(names[:-1])} or {names[-1]}")
        return None

    def convert(self, path: str, value: object, converter: Callable[[object], T]) -> T | None:
        """`converter(value)`, or None with the problem it names."""
        try:
            return converter(value)
        except ValueError as exc:
            self.fail(path, value, str(exc))
            return None

    def units(self, path: str, value: Any, converters: Mapping[str, Converter]) -> dict[str, Any]:
        """The keys of the mapping `value`, each through its converter; bad ones are left out."""
        out = {}
        for key, raw in self.mapping(path, value, converters.keys()).items():
            converted = self.convert(f"{path}.{key}", raw, converters[key])
            if converted is not None:
                out[key] = converted
        return out

    def strings(self, path: str, value: Any) -> dict[str, str]:
        out = {}
        for key, item in self.mapping(path, value, None).items():
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                try:
                    out[key] = str(item)  # a number written bare: `name: 2024`
                    continue
                except ValueError:  # an integer past str()'s 4300-digit limit
                    pass
            self.fail(key_path(path, key), item, "must be a string")
        return out

    def regex(self, path: str, value: Any) -> re.Pattern[str] | None:
        if not isinstance(value, str):
            self.fail(path, value, "must be a string")
            return None
        try:
            with warnings.catch_warnings():
                # "Possible nested set" and the like: advice on a pattern that compiles, not a problem.
                warnings.simplefilter("ignore", FutureWarning)
                compiled = re.compile(value)
            if _repeat_depth(_sre_parse.parse(value)) > 1:
                # Matched against what clients and upstreams send, in the event loop: a body made
                # for it would hold every request for seconds.
                self.fail(path, value, "repeats a repeat, as (a+)+ does, which some text makes take exponential "
                                       "time; write it without (a+)")
                return None
            return compiled
        except re.error as exc:
            self.fail(path, value, f"is not a regular expression ({exc})")
        except (OverflowError, RecursionError) as exc:  # a{9999999999}; thousands of nested groups
            self.fail(path, value, f"is not a regular expression ({exc})")
        return None

    def address(self, path: str, value: Any) -> Address:
        text = value if isinstance(value, str) else str(value) if isinstance(value, int) and value.bit_length() < 64 else ""
        host, sep, port = text.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        if sep and port.isascii() and port.isdigit() and len(port) <= 5 and int(port) < 65536 and _is_host(host):
            return Address(host, int(port))
        self.fail(path, value, "is not an address (HOST:PORT, e.g. 0.0.0.0:8080)")
        return Address("0.0.0.0", 8080)

    def networks(self, path: str, value: Any) -> tuple[IPNetwork, ...]:
        if not isinstance(value, list):
            self.fail(path, value, "must be a list of addresses or CIDR ranges")
            return ()
        out = []
        for index, item in enumerate(value):
            try:
                out.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:  # str() of an integer past its 4300-digit limit too
                self.fail(f"{path}[{index}]", item, "is not an IP address or CIDR range")
        return tuple(out)


def _is_host(host: str) -> bool:
    """An IP address or a host name to listen on (no wildcard)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return not host.startswith("*.") and HOST.fullmatch(host.lower()) is not None
    return True
