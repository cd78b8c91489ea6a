"""The soak harness's pure parts: /proc/net/tcp parsing, answer classification, restart windows, the verdict.

The /proc/net/tcp{,6} samples are real lines captured on Linux (the kernel's
trailing padding trimmed): listeners, ESTABLISHED connections over IPv6
loopback and IPv4-mapped IPv6, a CLOSE_WAIT, and the FIN_WAIT2 and TIME_WAIT
ends (inode 0: no process holds them) that closed connections leave behind.
"""

from __future__ import annotations

import copy
import doctest

import pytest

from bench import soak_probe, soak_traffic, soak_verdict
from bench.soak_probe import TcpSocket, count_to_port, parse_tcp, upstream_errors
from bench.soak_traffic import Answer, Tally, classify
from bench.soak_upstream import DIE_SENT, SLOW_SIZE
from bench.soak_verdict import baseline, in_restart, percentile, summarize, table, tracebacks, verdict

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   1: 0100007F:E69D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 170249 1 00000000adef0a6a 100 0 0 10 0
  90: 0100007F:E69D 0100007F:BB40 05 00000000:00000000 03:00001764 00000000     0        0 0 3 0000000050d5124d
 227: 0100007F:BB40 0100007F:E69D 08 00000000:00000001 00:00000000 00000000     0        0 170250 2 000000007ea7bd79 20 4 0 10 -1
1395: 0100007F:A024 0100007F:E69D 06 00000000:00000000 03:00001765 00000000     0        0 0 3 00000000f3719b73
"""

TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:9E73 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 170244 1 00000000de605698 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:B16E 0000000000000000FFFF00000100007F:9E73 01 00000000:00000000 00:00000000 00000000     0        0 170247 2 00000000d755e798 20 0 0 10 -1
   2: 00000000000000000000000001000000:E48A 00000000000000000000000001000000:9E73 01 00000000:00000000 00:00000000 00000000     0        0 170245 2 00000000fbe5b721 20 0 0 10 -1
"""


def test_parse_tcp_reads_addresses_states_and_inodes():
    assert parse_tcp(TCP) == [
        TcpSocket(("127.0.0.1", 0xE69D), ("0.0.0.0", 0), "LISTEN", 170249),
        TcpSocket(("127.0.0.1", 0xE69D), ("127.0.0.1", 0xBB40), "FIN_WAIT2", 0),
        TcpSocket(("127.0.0.1", 0xBB40), ("127.0.0.1", 0xE69D), "CLOSE_WAIT", 170250),
        TcpSocket(("127.0.0.1", 0xA024), ("127.0.0.1", 0xE69D), "TIME_WAIT", 0),
    ]


def test_parse_tcp6_maps_ipv4_and_keeps_ipv6():
    assert parse_tcp(TCP6) == [
        TcpSocket(("::", 0x9E73), ("::", 0), "LISTEN", 170244),
        TcpSocket(("127.0.0.1", 0xB16E), ("127.0.0.1", 0x9E73), "ESTABLISHED", 170247),
        TcpSocket(("::1", 0xE48A), ("::1", 0x9E73), "ESTABLISHED", 170245),
    ]


def test_parse_tcp_skips_the_header_and_short_lines():
    assert parse_tcp(TCP.splitlines()[0] + "\n\n   7: truncated\n") == []


@pytest.mark.parametrize(("inodes", "port", "expected"), [
    pytest.param({170250}, 0xE69D, {"CLOSE_WAIT": 1}, id="held-close-wait"),
    pytest.param({170247}, 0x9E73, {"ESTABLISHED": 1}, id="ipv4-mapped-counts-as-127.0.0.1"),
    pytest.param({170245}, 0x9E73, {}, id="ipv6-loopback-is-another-host"),
    pytest.param({170249, 170250}, 0xE69D, {"CLOSE_WAIT": 1}, id="own-listener-is-not-a-connection-to-it"),
    pytest.param({0}, 0xE69D, {}, id="orphans-with-inode-0-never-count"),
    pytest.param({999}, 0xE69D, {}, id="another-process"),
    pytest.param({170250}, 80, {}, id="another-port"),
])
def test_count_to_port(inodes, port, expected):
    assert count_to_port(parse_tcp(TCP) + parse_tcp(TCP6), inodes, port) == expected


def test_upstream_errors_sums_kinds_over_upstreams_and_ignores_other_series():
    metrics = (
        "# TYPE errorproxy_upstream_errors_total counter\n"
        'errorproxy_upstream_errors_total{kind="connection_refused",upstream="app"} 12.0\n'
        'errorproxy_upstream_errors_total{kind="connection_refused",upstream="other"} 3.0\n'
        'errorproxy_upstream_errors_total{kind="http_response_incomplete",upstream="app"} 5.0\n'
        'errorproxy_upstream_errors_created{kind="connection_refused",upstream="app"} 1.7e+09\n'
        'errorproxy_requests_total{method="GET",route="all",status="502"} 15.0\n'
    )
    assert upstream_errors(metrics) == {"connection_refused": 15, "http_response_incomplete": 5}


PROBLEM = "application/problem+json"
CONFLICT = b'{"type":"about:blank","title":"Conflict","status":409}'
ERROR = b'{"type":"about:blank","title":"Internal Server Error","status":500}'


@pytest.mark.parametrize(("kind", "answer", "during_restart", "outcome"), [
    pytest.param("fast", Answer(200, "application/json", head=b'{"ok": true}'), False, "ok", id="fast-ok"),
    pytest.param("fast", Answer(200, "application/json", head=b'{"ok": false}'), False, "unexpected", id="fast-wrong-body"),
    pytest.param("fast", Answer(502, PROBLEM), True, "restart", id="fast-502-in-restart"),
    pytest.param("fast", Answer(504, PROBLEM), True, "restart", id="fast-504-in-restart"),
    pytest.param("fast", Answer(502, PROBLEM), False, "unexpected", id="fast-502-otherwise"),
    pytest.param("fast", Answer(500, PROBLEM), True, "unexpected", id="fast-500-even-in-restart"),
    pytest.param("fast", Answer(error="ServerDisconnectedError"), True, "restart", id="fast-disconnect-in-restart"),
    pytest.param("fast", Answer(error="TimeoutError"), False, "unexpected", id="fast-timeout"),
    pytest.param("conflict", Answer(409, PROBLEM, '"v7-doc"', head=CONFLICT), False, "rewritten", id="conflict"),
    pytest.param("conflict", Answer(409, PROBLEM, None, head=CONFLICT), False, "unexpected", id="conflict-etag-lost"),
    pytest.param("conflict", Answer(409, "application/json", '"v7-doc"', head=b'{"error": {}}'), False, "unexpected",
                 id="conflict-not-rewritten"),
    pytest.param("error", Answer(500, PROBLEM, head=ERROR), False, "rewritten", id="error"),
    pytest.param("error", Answer(500, PROBLEM, head=ERROR[:-1] + b',"detail":"Traceback (most..."}'), False,
                 "unexpected", id="error-traceback-leaked"),
    pytest.param("error", Answer(500, "text/plain", head=b"Traceback (most recent call last):"), False, "unexpected",
                 id="error-passed-through"),
    pytest.param("slow", Answer(200, size=SLOW_SIZE), False, "ok", id="slow-whole"),
    pytest.param("slow", Answer(200, size=SLOW_SIZE // 2, error="ClientPayloadError"), True, "restart",
                 id="slow-cut-by-restart"),
    pytest.param("slow", Answer(200, size=SLOW_SIZE // 2, error="ClientPayloadError"), False, "unexpected",
                 id="slow-cut-otherwise"),
    pytest.param("slow", Answer(200, size=SLOW_SIZE - 1), False, "unexpected", id="slow-short-without-error"),
    pytest.param("die", Answer(200, size=DIE_SENT, error="ClientPayloadError"), False, "cut", id="die-cut"),
    pytest.param("die", Answer(200, size=0, error="ServerDisconnectedError"), False, "cut", id="die-cut-early"),
    pytest.param("die", Answer(200, size=DIE_SENT), False, "unexpected", id="die-ended-cleanly"),
    pytest.param("die", Answer(502, PROBLEM), False, "unexpected", id="die-502"),
    pytest.param("die", Answer(502, PROBLEM), True, "restart", id="die-502-in-restart"),
    pytest.param("abort", Answer(aborted=True), False, "client_abort", id="abort"),
    pytest.param("abort", Answer(200, size=SLOW_SIZE), False, "ok", id="abort-answered-first"),
    pytest.param("fast", Answer(aborted=True), False, "unexpected", id="abort-of-another-kind"),
])
def test_classify(kind, answer, during_restart, outcome):
    assert classify(kind, answer, during_restart) == outcome


def test_classify_upload_checks_the_size_the_upstream_read():
    answer = Answer(200, "application/json", head=b'{"bytes": 70000}')
    assert classify("upload", answer, False, upload_size=70000) == "ok"
    assert classify("upload", answer, False, upload_size=70001) == "unexpected"


def test_tally_windows_latencies_and_examples():
    tally = Tally()
    tally.add("fast", "ok", Answer(200), 1.0, 0.002)
    tally.add("slow", "ok", Answer(200), 1.0, 1.0)  # not a small answer: no latency kept
    tally.add("fast", "unexpected", Answer(502, head=b"x" * 1000), 2.0, 0.001)
    assert tally.take_window() == ({"ok": 2, "unexpected": 1}, [2.0])
    assert tally.take_window() == ({}, [])
    assert tally.totals == {"ok": 2, "unexpected": 1}
    assert tally.by_kind == {"fast": {"ok": 1, "unexpected": 1}, "slow": {"ok": 1}}
    assert [(e["kind"], e["status"], len(e["body"])) for e in tally.examples] == [("fast", 502, 300)]


@pytest.mark.parametrize(("start", "end", "inside"), [
    pytest.param(50.0, 59.9, False, id="before"),
    pytest.param(59.0, 60.0, True, id="ends-at-the-kill"),
    pytest.param(60.5, 60.6, True, id="while-down"),
    pytest.param(62.0, 63.4, True, id="in-the-grace"),
    pytest.param(63.6, 64.0, False, id="after-the-grace"),
    pytest.param(10.0, 100.0, True, id="spans-it"),
])
def test_in_restart(start, end, inside):
    assert in_restart(start, end, [{"down_at": 60.0, "up_at": 61.5}], grace=2.0) is inside


def test_in_restart_while_the_upstream_is_still_down():
    assert in_restart(500.0, 500.1, [{"down_at": 60.0, "up_at": 61.5}, {"down_at": 120.0, "up_at": None}])


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def sample(t: float, rss: float = 50.0, fds: int = 80, conns: int = 32, close_wait: int = 0,
           pids: tuple[int, ...] = (42,)) -> dict:
    return {"t": t, "rss_mib": rss, "fds": fds, "upstream_conns": conns, "upstream_close_wait": close_wait,
            "pids": list(pids), "requests": {"ok": 100}, "latency_ms": {"p50": 2.0, "p99": 20.0, "n": 90}}


RESTARTS = [{"down_at": 60.0, "up_at": 61.5}, {"down_at": 120.0, "up_at": 121.5}, {"down_at": 180.0, "up_at": 181.5}]
SAMPLES = [sample(t) for t in range(10, 201, 10)]
QUIET_START = {"fds": 16, "upstream_conns": 1, "upstream_close_wait": 0}
QUIET_END = {"fds": 40, "upstream_conns": 20, "upstream_close_wait": 0}


def judge(samples=SAMPLES, quiet_end=QUIET_END, totals=None, tracebacks=0) -> dict:
    return verdict(samples, RESTARTS, QUIET_START, quiet_end, totals or {"ok": 2000}, tracebacks,
                   concurrency=32, duration=200.0)


def test_baseline_is_the_first_sample_from_minute_one_clear_of_restarts():
    assert baseline(SAMPLES, RESTARTS, 600.0)["t"] == 70  # 60 is the restart itself
    assert baseline(SAMPLES, [], 600.0)["t"] == 60
    assert baseline(SAMPLES, [], 45.0)["t"] == 20  # a short run: a third of it
    assert baseline(SAMPLES[:5], [{"down_at": 5.0, "up_at": None}], 600.0)["t"] == 10  # nothing clear: the first
    assert baseline([], [], 600.0) is None


def test_a_steady_run_is_flat():
    result = judge()
    assert result["flat"] is True
    assert set(result["checks"]) == {"rss", "after_restarts", "quiet_end", "outcomes", "tracebacks", "processes"}
    assert result["checks"]["after_restarts"]["detail"].startswith("3 of 3 restarts judged")


def with_changes(changes: dict[float, dict]) -> list[dict]:
    samples = copy.deepcopy(SAMPLES)
    for item in samples:
        item.update(changes.get(item["t"], {}))
    return samples


@pytest.mark.parametrize(("kwargs", "failed"), [
    pytest.param({"samples": with_changes({200: {"rss_mib": 70.1}})}, "rss", id="rss-grew"),
    pytest.param({"samples": with_changes({130: {"fds": 89}})}, "after_restarts", id="fds-after-a-restart"),
    pytest.param({"samples": with_changes({190: {"upstream_conns": 41}})}, "after_restarts",
                 id="connections-after-a-restart"),
    pytest.param({"quiet_end": {**QUIET_END, "upstream_close_wait": 1}}, "quiet_end", id="close-wait-left"),
    pytest.param({"quiet_end": {**QUIET_END, "fds": 44}}, "quiet_end", id="fds-left-open"),
    pytest.param({"totals": {"ok": 2000, "unexpected": 1}}, "outcomes", id="one-unexpected"),
    pytest.param({"tracebacks": 1}, "tracebacks", id="a-traceback"),
    pytest.param({"samples": with_changes({150: {"pids": [42, 43]}})}, "processes", id="a-worker-replaced"),
])
def test_each_check_can_fail_the_verdict(kwargs, failed):
    result = judge(**kwargs)
    assert result["flat"] is False
    assert [name for name, check in result["checks"].items() if not check["ok"]] == [failed]


def test_margins_are_inclusive():
    samples = with_changes({200: {"rss_mib": 70.0}, 130: {"fds": 88}, 190: {"upstream_conns": 40}})
    assert judge(samples=samples, quiet_end={**QUIET_END, "fds": 43})["flat"] is True


def test_a_sample_inside_the_settling_time_is_not_judged():
    # 125 s is 3.5 s after the upstream came back: connections are still being reopened.
    samples = sorted(with_changes({})[:12] + [sample(125.0, fds=200)] + with_changes({})[12:], key=lambda s: s["t"])
    assert judge(samples=samples)["flat"] is True


def test_no_sample_is_not_flat():
    assert judge(samples=[])["flat"] is False


def test_tracebacks_counts_only_lines_that_start_one():
    log = ("WARNING upstream 500 body scrubbed (traceback) body='Traceback (most recent call last):\\n  File'\n"
           "Traceback (most recent call last):\n  File \"proxy/x.py\", line 1\nValueError: boom\n"
           "Traceback (most recent call last):\n")
    count, excerpts = tracebacks(log, keep=1)
    assert count == 2
    assert excerpts == ['Traceback (most recent call last):\n  File "proxy/x.py", line 1\nValueError: boom\n'
                        'Traceback (most recent call last):']


def test_summary_and_table():
    samples = with_changes({10: {"rss_mib": 48.0}, 100: {"rss_mib": 55.5, "fds": 90}})
    summary = summarize(samples, RESTARTS, {"ok": 10, "restart": 2}, [1.0, 2.0, 3.0])
    assert summary["rss_mib"] == {"start": 48.0, "end": 50.0, "max": 55.5}
    assert summary["fds"] == {"start": 80, "end": 80, "max": 90}
    assert (summary["requests_total"], summary["restarts"], summary["latency_ms"]) == (
        12, 3, {"p50": 2.0, "p99": 3.0, "n": 3})
    text = table(samples, summary, judge())
    assert text.splitlines()[0].split()[:3] == ["t", "s", "RSS"]
    assert "12 requests: ok 10, rewritten 0, cut 0, restart 2, client_abort 0, unexpected 0" in text
    assert text.endswith("flat: true")


@pytest.mark.parametrize("module", [soak_probe, soak_traffic, soak_verdict], ids=lambda module: module.__name__)
def test_docstring_examples(module):
    # bench/ is outside pytest's doctest paths: its examples are run here.
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0
