"""docs/configuration.md documents exactly the keys the loader accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.config import loader

from proxy.config import brand as loader_brand

from proxy.config import policy as loader_policy

from proxy.config.concurrency import CONCURRENCY_KEYS
from proxy.config.resilience import HEALTH_CHECK_KEYS

from proxy.config import transport
from proxy.config import gateway

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def _documented(heading: str) -> set[str]:
    """The backticked keys in the first column of the table under `heading`."""
    section = DOC.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


@pytest.mark.parametrize(
    "heading, accepted",
    [
        pytest.param("## Top level", loader._TOP_KEYS, id="top"),
        pytest.param("## `server`", set(loader._SERVER_KEYS), id="server"),
        pytest.param("## `brand`", loader_brand.BRAND_KEYS, id="brand"),
        pytest.param("## `upstreams.NAME`", {"url", "targets"} | set(loader._UPSTREAM_KEYS), id="upstream"),
        pytest.param("### `upstreams.NAME.health_check`", HEALTH_CHECK_KEYS, id="health_check"),
        pytest.param("## `routes[N]`", loader._ROUTE_KEYS - loader._ROUTE_POLICY_KEYS, id="route"),
        pytest.param("### `routes[N].match`", loader._MATCH_KEYS, id="match"),
        pytest.param("## Route policy (in `defaults` or a route)", loader._ROUTE_POLICY_KEYS, id="policy"),
        pytest.param("### `errors[N]`", loader_policy._RULE_KEYS, id="rule"),
        pytest.param("### `success_false`", loader_policy._SUCCESS_FALSE_KEYS, id="success_false"),
        pytest.param("### `concurrency`", CONCURRENCY_KEYS, id="concurrency"),
        pytest.param("## `tls`", transport.LISTENER_TLS_KEYS, id="listener-tls"),
        pytest.param("### `cors`", gateway.CORS_KEYS, id="cors"),
        pytest.param("### `maintenance`", gateway.MAINTENANCE_KEYS, id="maintenance"),
        pytest.param("### `upstreams.NAME.tls`", transport.UPSTREAM_TLS_KEYS, id="upstream-tls"),
    ],
)
def test_reference_lists_every_accepted_key(heading, accepted):
    assert _documented(heading) == set(accepted)


ROOT = Path(__file__).resolve().parents[2]


def _code_map() -> list[str]:
    """The paths in the first column of the README's "Code map" table."""
    section = (ROOT / "README.md").read_text().split("## Code map\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


def test_code_map_lists_every_subpackage_and_nothing_stale():
    listed = _code_map()
    subpackages = sorted(f"proxy/{path.parent.name}/" for path in (ROOT / "proxy").glob("*/__init__.py"))
    assert [entry for entry in subpackages if entry not in listed] == [], "subpackages missing from the code map"
    assert [entry for entry in listed if not (ROOT / entry).exists()] == [], "code map entries that do not exist"
    assert len(listed) == len(set(listed))
