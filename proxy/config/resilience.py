"""Validation of an upstream's resilience keys that are no plain unit.

`retry_on`, `retry_budget`, `health_check`, `max_requests` and `max_pending`
are checked here; `eject_after`, `retry_budget_min` (counts) and
`max_eject_for` (a duration) are units like the others, and `max_eject_for`
is checked against `eject_for` here once both are known.

>>> from .problems import Checker
>>> check = Checker()
>>> options = check_resilience(check, "upstreams.app", {"retry_on": ["connect", 503], "retry_budget": "25%"}, {})
>>> sorted(options["retry_on"]), options["retry_budget"]  # a frozenset's order changes from run to run
(['503', 'connect'], 25.0)
>>> check_resilience(check, "upstreams.app", {"retry_on": [500], "health_check": {"path": "health"}}, {})
{'retry_on': frozenset()}
>>> check.problems  # doctest: +NORMALIZE_WHITESPACE
['upstreams.app.retry_on[0]: 500 is not a retry condition (connect, reset, 502, 503, 504)',
 'upstreams.app.health_check.path: "health" is not a path (/..., visible ASCII, no spaces)']
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from .keys import yaml_keys
from .problems import Checker
from .values import read_count, read_positive_duration
from ..core.settings import RETRY_REASONS, HealthCheck, UpstreamSettings
from ..core.status import StatusSet

RESILIENCE_KEYS = frozenset({"retry_on", "retry_budget", "health_check", "max_requests", "max_pending"})
HEALTH_CHECK_KEYS = yaml_keys(HealthCheck)
_PATH = re.compile(r"/[!-~]{0,1023}")  # it goes on the request line as written: visible ASCII, no spaces
_REASONS = ", ".join(RETRY_REASONS)
# slots=True: the class attributes are descriptors, so the defaults are read off the fields.
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(UpstreamSettings)}


def check_resilience(check: Checker, path: str, spec: dict[str, Any], units: dict[str, Any]) -> dict[str, Any]:
    """The settings the keys of upstream `spec` give; `units` are its converted unit keys."""
    values: dict[str, Any] = {}
    if "retry_on" in spec:
        values["retry_on"] = _retry_on(check, f"{path}.retry_on", spec["retry_on"])
    if "retry_budget" in spec:
        budget = check.convert(f"{path}.retry_budget", spec["retry_budget"], read_percent)
        if budget is not None:
            values["retry_budget"] = budget
    for key, least in (("max_requests", 1), ("max_pending", 0)):
        if key in spec and spec[key] is not None:  # null: no cap
            cap = check.convert(f"{path}.{key}", spec[key], read_count)
            if cap is not None and cap < least:
                check.fail(f"{path}.{key}", spec[key], f"must be at least {least} (or null for no cap)")
            elif cap is not None:
                values[key] = cap
        elif key in spec:
            values[key] = None
    if "health_check" in spec:
        health_check = _health_check(check, f"{path}.health_check", spec["health_check"])
        if health_check is not None:
            values["health_check"] = health_check
    eject_for = units.get("eject_for", _DEFAULTS["eject_for"])
    if "max_eject_for" in units and units["max_eject_for"] < eject_for:
        check.fail(f"{path}.max_eject_for", spec["max_eject_for"], f"must be at least eject_for ({eject_for:g}s)")
    return values


def read_percent(value: object) -> float:
    """A share from 0 to 100 percent, written `20%` or as a bare number.

    >>> read_percent("12.5%"), read_percent(20)
    (12.5, 20.0)
    >>> read_percent("120%")
    Traceback (most recent call last):
    ValueError: must be from 0% to 100%
    """
    number: float | None = None
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,6})?", text):
            number = float(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if abs(value) < 1e9 else math.inf
    if number is None or math.isnan(number):
        raise ValueError("is not a percentage (20%)")
    if not 0 <= number <= 100:
        raise ValueError("must be from 0% to 100%")
    return number


def _retry_on(check: Checker, path: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        check.fail(path, value, f"must be a list of retry conditions ({_REASONS})")
        return _DEFAULTS["retry_on"]
    reasons = set()
    for index, item in enumerate(value):
        text = item.strip() if isinstance(item, str) else None
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < 1000:
            text = str(item)
        if text in RETRY_REASONS:
            reasons.add(text)
        else:
            check.fail(f"{path}[{index}]", item, f"is not a retry condition ({_REASONS})")
    return frozenset(reasons)


def _health_check(check: Checker, path: str, value: Any) -> HealthCheck | None:
    problems = len(check.problems)
    spec = check.mapping(path, value, HEALTH_CHECK_KEYS, required=True)
    values: dict[str, Any] = {}
    target = spec.get("path")
    if not isinstance(value, dict) or not value:
        return None  # reported: its keys are not worth looking for
    if target is None:
        check.missing(f"{path}.path", "a health check needs the path it asks for (path: /health)")
    elif not isinstance(target, str) or not _PATH.fullmatch(target):
        check.fail(f"{path}.path", target, "is not a path (/..., visible ASCII, no spaces)")
    else:
        values["path"] = target
    for key in ("interval", "timeout"):
        if key in spec:
            seconds = check.convert(f"{path}.{key}", spec[key], read_positive_duration)
            if seconds is not None:
                values[key] = seconds
    if "expect" in spec:
        items = spec["expect"] if isinstance(spec["expect"], list) else [spec["expect"]]
        ranges = []
        for item in items:
            try:
                ranges += StatusSet.parse([item]).ranges
            except ValueError:
                check.fail(f"{path}.expect", item, "is not a status, class or range")
        if not items:
            check.fail(f"{path}.expect", spec["expect"], "must name at least one status")
        values["expect"] = StatusSet(tuple(ranges))
    if not isinstance(value, dict) or len(check.problems) > problems:
        return None
    return HealthCheck(**values)
