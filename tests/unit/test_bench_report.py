"""The benchmark's rounds into results (bench/report.py), the runs a case makes, and nginx's proxy config.

The large-body cases also run nginx with `proxy_buffering off`: its numbers sit
beside nginx's, and its ratios are paired with errorproxy's round by round, as
the default nginx's are.
"""

from __future__ import annotations

import pytest

from bench import report
from bench.cases import CASES
from bench.servers import nginx_proxy_servers

BY_NAME = {case.name: case for case in CASES}


def numbers(rps: float) -> dict[str, float]:
    """One run's numbers, all moving with its req/s."""
    return {"rps": rps, "mib_s": rps, "p50_ms": 1000 / rps, "p99_ms": 2000 / rps, "cpu_us_per_req": 1e6 / rps,
            "rss_mb": 10.0, "rss_max_mb": 10.0, "upstream_connections": 8, "requests": int(rps), "errors": 0}


# Three rounds; the last round's unbuffered nginx failed (None), as a failed run is recorded.
ROUNDS = [
    {"errorproxy": numbers(200), "nginx": numbers(100), "nginx_unbuffered": numbers(50)},
    {"errorproxy": numbers(300), "nginx": numbers(100), "nginx_unbuffered": numbers(300)},
    {"errorproxy": numbers(100), "nginx": numbers(100), "nginx_unbuffered": None},
]


@pytest.mark.parametrize("name", ["mib", "gib", "upload", "tls-mib"])
def test_large_bodies_also_run_nginx_unbuffered_last(name):
    assert BY_NAME[name].proxies == ("errorproxy", "nginx", "nginx_unbuffered")


@pytest.mark.parametrize("name", ["ok", "conflict", "conns", "latency", "tls-ok"])
def test_small_bodies_run_errorproxy_then_nginx(name):
    assert BY_NAME[name].proxies == ("errorproxy", "nginx")


def test_guard_write_runs_errorproxy_against_itself():
    assert BY_NAME["guard-write"].proxies == ("errorproxy", "unguarded")


def test_unbuffered_ratios_are_medians_of_same_round_ratios():
    entry = report.case_result(BY_NAME["mib"], 1, ROUNDS, {})
    assert entry["nginx_unbuffered"]["rps"] == 175  # the median of the two runs done
    # Round by round: 200/50 and 300/300, the third unpaired; not 200/175, the ratio of the medians.
    assert entry["ratio_rps_unbuffered"] == 2.5
    assert entry["ratio_mib_s_unbuffered"] == 2.5
    assert entry["ratio_p50_unbuffered"] == 0.625


def test_default_nginx_ratios_ignore_the_unbuffered_runs():
    with_unbuffered = report.case_result(BY_NAME["mib"], 1, ROUNDS, {})
    without = report.case_result(BY_NAME["ok"], 1, [{key: run[key] for key in ("errorproxy", "nginx")}
                                                   for run in ROUNDS], {})
    assert with_unbuffered["ratio_rps"] == without["ratio_rps"] == 2.0
    assert {key: value for key, value in with_unbuffered.items() if key.startswith("ratio_")
            and not key.endswith("_unbuffered")} == {key: value for key, value in without.items()
                                                     if key.startswith("ratio_")}


def test_a_case_without_unbuffered_runs_has_no_unbuffered_keys():
    entry = report.case_result(BY_NAME["ok"], 1, ROUNDS, {})
    assert [key for key in entry if "unbuffered" in key] == []


def test_upload_adds_over_direct_for_every_proxy():
    rounds = [{**run, "direct": numbers(400)} for run in ROUNDS]
    entry = report.case_result(BY_NAME["upload"], 1, rounds, {})
    assert list(entry["added_p50_ms"]) == ["errorproxy", "nginx", "nginx_unbuffered"]
    assert entry["added_p50_ms"]["nginx_unbuffered"] == 9.167  # the median of 20 - 2.5 and 3.333 - 2.5


def test_table_shows_the_unbuffered_row_and_its_ratio_after_nginx():
    lines = report.table([report.case_result(BY_NAME["mib"], 1, ROUNDS, {})]).splitlines()
    proxies = [line[16:27].strip() for line in lines[2:] if line.strip()]
    assert proxies == ["errorproxy", "nginx", "nginx unbuf", "ep/nginx", "ep/unbuf"]
    assert lines[6].split()[1:3] == ["2.50x", "2.50x"]


def test_table_of_a_small_body_case_has_no_unbuffered_rows():
    text = report.table([report.case_result(BY_NAME["ok"], 1, ROUNDS, {})])
    assert "unbuf" not in text
    assert "ep/nginx" in text


@pytest.mark.parametrize("buffering, expected", [(True, False), (False, True)], ids=["default", "unbuffered"])
def test_nginx_proxy_config_turns_response_buffering_off_only_when_asked(buffering, expected):
    config = nginx_proxy_servers(8080, 8081, buffering=buffering)
    assert ("      proxy_buffering off;\n" in config) is expected
    assert "      proxy_request_buffering off;\n" in config  # both stream request bodies
