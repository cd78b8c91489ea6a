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
            check.fail("access_log", top["access_log"], "must be json, text or off")
    if "watch_config" in top:
        if isinstance(top["watch_config"], bool):
            values["watch_config"] = top["watch_config"]
        else:
            check.fail("watch_config", top["watch_config"], "must be true or false")
    readiness = check.mapping("readiness", top.get("readiness"), _READINESS_KEYS)
    if "check_upstreams" in readiness:
        if isinstance(readiness["check_upstreams"], bool):
            values["ready_needs_upstreams"] = readiness["check_upstreams"]
        else:
            check.fail("readiness.check_upstreams", readiness["check_upstreams"], "must be true or false")
    return OpsSettings(**values)
