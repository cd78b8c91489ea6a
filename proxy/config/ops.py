"""Validation of the operations keys: `admin`, `access_log`, `watch_config`, `readiness`."""

from __future__ import annotations

from typing import Any

from .keys import yaml_keys
from .problems import Checker
from ..core.settings import OpsSettings

# Top-level keys; `ready_needs_upstreams` is written `readiness: {check_upstreams: true}`.
OPS_KEYS = yaml_keys(OpsSettings, {"ready_needs_upstreams": "readiness"})
_READINESS_KEYS = frozenset({"check_upstreams"})
_ACCESS_LOGS = ("json", "text", "off")


def check_ops(check: Checker, top: dict[str, Any]) -> OpsSettings:
    values: dict[str, Any] = {}
    if "admin" in top:
        admin = top["admin"]
        off = admin is None or admin is False or admin == "off"  # not `in (None, False, "off")`: 0 == False
        values["admin"] = None if off else check.address("admin", admin)
    if "access_log" in top:
        if top["access_log"] in _ACCESS_LOGS:
            values["access_log"] = top["access_log"]
        elif top["access_log"] is False:
            values["access_log"] = "off"
        else:
            check.choice("access_log", top["access_log"], _ACCESS_LOGS)  # reports it
    if "watch_config" in top and (flag := check.flag("watch_config", top["watch_config"])) is not None:
        values["watch_config"] = flag
    readiness = check.mapping("readiness", top.get("readiness"), _READINESS_KEYS)
    if "check_upstreams" in readiness and \
            (flag := check.flag("readiness.check_upstreams", readiness["check_upstreams"])) is not None:
        values["ready_needs_upstreams"] = flag
    return OpsSettings(**values)
