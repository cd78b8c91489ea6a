"""Maintenance mode: the decision (core.maintenance) and the switches it reads (http.maintenance.Switches)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from proxy.core.maintenance import GLOBAL, Switch, Window, client_address, passes, window
from proxy.core.settings import Maintenance
from proxy.http.maintenance import INTERVAL, Switches

OFF = Maintenance()
CONFIG = Maintenance(enabled=True, retry_after=60, message="Upgrading")
FILE = Maintenance(file="/run/errorproxy/maintenance", retry_after=90)


@pytest.mark.parametrize(
    "settings, switches, file_present, expected",
    [
        pytest.param(OFF, {}, False, None, id="off"),
        pytest.param(CONFIG, {}, False, Window("config", 60, "Upgrading"), id="config"),
        pytest.param(FILE, {}, True, Window("file", 90, None), id="file-present"),
        pytest.param(FILE, {}, False, None, id="file-absent"),
        pytest.param(OFF, {}, True, None, id="a-file-the-route-does-not-name"),
        pytest.param(OFF, {GLOBAL: Switch()}, False, Window("admin", 300, None), id="global-switch"),
        pytest.param(CONFIG, {GLOBAL: Switch(retry_after=5)}, False, Window("admin", 5, "Upgrading"),
                     id="switch-values-over-config"),
        pytest.param(OFF, {"api": Switch(message="api only")}, False, Window("admin", 300, "api only"),
                     id="route-switch"),
        pytest.param(OFF, {"site": Switch()}, False, None, id="another-routes-switch"),
        pytest.param(OFF, {"api": Switch(retry_after=1), GLOBAL: Switch(retry_after=2)}, False,
                     Window("admin", 1, None), id="route-switch-before-global"),
        pytest.param(Maintenance(enabled=False), {GLOBAL: Switch()}, False, Window("admin", 300, None),
                     id="switch-over-enabled-false"),
    ],
)
def test_window(settings, switches, file_present, expected):
    assert window("api", settings, switches, file_present) == expected


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    "peer, forwarded_for, expected",
    [
        pytest.param("198.51.100.7", [], "198.51.100.7", id="peer"),
        pytest.param("198.51.100.7", ["192.0.2.1"], "198.51.100.7", id="untrusted-peer-header-ignored"),
        pytest.param("10.0.0.2", ["192.0.2.1"], "192.0.2.1", id="trusted-peer"),
        pytest.param("10.0.0.2", ["192.0.2.66, 203.0.113.5, 10.0.0.9"], "203.0.113.5", id="nearest-untrusted"),
        pytest.param("10.0.0.2", ["192.0.2.66", "203.0.113.5"], "203.0.113.5", id="several-headers"),
        pytest.param("10.0.0.2", ["10.1.1.1, 10.2.2.2"], "10.1.1.1", id="all-trusted-farthest"),
        pytest.param("10.0.0.2", [], "10.0.0.2", id="trusted-peer-no-header"),
        pytest.param("10.0.0.2", ["192.0.2.1, junk"], None, id="junk-nearest-fails-closed"),
        pytest.param("10.0.0.2", ["192.0.2.1:8080"], None, id="with-port-fails-closed"),
        pytest.param("::ffff:10.0.0.2", ["192.0.2.1"], "192.0.2.1", id="mapped-v4-peer"),
        pytest.param("::1", ["2001:db8::5"], "2001:db8::5", id="v6"),
        pytest.param(None, [], None, id="no-peer"),
        pytest.param("unix-socket", [], None, id="peer-not-an-address"),
    ],
)
def test_client_address(peer, forwarded_for, expected):
    address = client_address(peer, forwarded_for, TRUSTED)
    assert (str(address) if address is not None else None) == expected


@pytest.mark.parametrize(
    "client, expected",
    [
        pytest.param("192.0.2.10", True, id="in-range"),
        pytest.param("2001:db8::1", True, id="v6-in-range"),
        pytest.param("198.51.100.1", False, id="outside"),
        pytest.param(None, False, id="unknown-client"),
    ],
)
def test_passes(client, expected):
    settings = Maintenance(allow=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")))
    assert passes(settings, ipaddress.ip_address(client) if client else None) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_switches_in_memory_are_this_objects_own():
    switches = Switches()
    assert switches.current() == {}
    switches.switch_on(GLOBAL, 600, "Back soon")
    assert switches.current()[GLOBAL].retry_after == 600
    assert switches.switch_off(GLOBAL) is True
    assert switches.switch_off(GLOBAL) is False
    assert switches.current() == {}


def test_a_switch_in_a_directory_reaches_another_reader_within_the_interval(tmp_path):
    clock = Clock()
    writer, reader = Switches(str(tmp_path), clock), Switches(str(tmp_path), clock)
    assert reader.current() == {}
    writer.switch_on("api", 120, "API upgrade")
    assert writer.current()["api"] == Switch(120, "API upgrade", writer.current()["api"].since)
    assert reader.current() == {}, "read at most once an interval"
    clock.now += INTERVAL
    assert reader.current()["api"].message == "API upgrade"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["route.api.maintenance.json"]
    writer.switch_off("api")
    clock.now += INTERVAL
    assert reader.current() == {}


def test_a_switch_file_that_cannot_be_read_is_still_a_switch(tmp_path):
    clock = Clock()
    (tmp_path / "global.maintenance.json").write_text("{not json")
    (tmp_path / "route.site.maintenance.json").write_text(json.dumps({"retry_after": "soon", "message": 7}))
    (tmp_path / ".switch-abc").write_text("half written")  # a writer's temporary file: not a switch
    (tmp_path / "notes.txt").write_text("")
    assert Switches(str(tmp_path), clock).current() == {GLOBAL: Switch(), "site": Switch()}


def test_a_missing_directory_is_no_switch_until_one_is_thrown(tmp_path):
    directory = tmp_path / "state"
    switches = Switches(str(directory), Clock())
    assert switches.current() == {}
    switches.switch_on(GLOBAL)
    assert (directory / "global.maintenance.json").exists()


def test_a_maintenance_file_is_looked_at_once_an_interval(tmp_path):
    clock = Clock()
    switches = Switches(clock=clock)
    flag = tmp_path / "maintenance"
    assert switches.present(str(flag)) is False
    flag.touch()
    assert switches.present(str(flag)) is False, "not looked at again within the interval"
    clock.now += INTERVAL
    assert switches.present(str(flag)) is True
    flag.unlink()
    clock.now += INTERVAL
    assert switches.present(str(flag)) is False
