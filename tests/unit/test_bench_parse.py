"""The wrk output parser of the benchmark harness (bench/wrkparse.py).

Every sample is real `wrk --latency` output (wrk 4.1.0, Debian), captured
against nginx on 127.0.0.1: the units wrk picks change with the values, and
error lines appear only when there were errors.
"""

from __future__ import annotations

import pytest

from bench.wrkparse import WrkParseError, parse, to_bytes, to_ms

SMALL_200_C50 = r"""Running 2s test @ http://127.0.0.1:18901/ok
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   710.19us  316.71us   5.44ms   80.33%
    Req/Sec    58.89k     7.05k   73.13k    75.00%
  Latency Distribution
     50%  720.00us
     75%  822.00us
     90%    0.92ms
     99%    1.86ms
  117120 requests in 2.00s, 18.43MB read
Requests/sec:  58482.80
Transfer/sec:      9.20MB
"""

CONFLICT_409_C50 = r"""Running 2s test @ http://127.0.0.1:18901/conflict
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.89ms  323.89us  16.20ms   97.30%
    Req/Sec    55.81k     2.90k   60.84k    70.00%
  Latency Distribution
     50%    0.87ms
     75%    0.93ms
     90%    1.01ms
     99%    1.35ms
  110894 requests in 2.00s, 19.04MB read
  Non-2xx or 3xx responses: 110894
Requests/sec:  55369.37
Transfer/sec:      9.50MB
"""

LATENCY_C1 = r"""Running 2s test @ http://127.0.0.1:18901/ok
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   199.50us  497.78us   9.20ms   97.86%
    Req/Sec     6.83k     1.05k    8.84k    66.67%
  Latency Distribution
     50%  136.00us
     75%  164.00us
     90%  190.00us
     99%    1.85ms
  14252 requests in 2.10s, 2.24MB read
Requests/sec:   6787.24
Transfer/sec:      1.07MB
"""

DOWNLOAD_3MB_GB_READ = r"""Running 2s test @ http://127.0.0.1:18901/body3m
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    15.72ms    4.83ms  52.93ms   79.52%
    Req/Sec   243.90     42.25   303.00     65.00%
  Latency Distribution
     50%   15.24ms
     75%   17.24ms
     90%   21.09ms
     99%   32.15ms
  983 requests in 2.03s, 2.75GB read
Requests/sec:    484.34
Transfer/sec:      1.35GB
"""

SLOW_SECONDS = """Running 5s test @ http://127.0.0.1:18901/slow
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.43s     3.81ms   1.44s    33.33%
    Req/Sec     1.00      0.00     1.00    100.00%
  Latency Distribution
     50%    1.43s\x20
     75%    1.44s\x20
     90%    1.44s\x20
     99%    1.44s\x20
  6 requests in 5.01s, 20.11MB read
Requests/sec:      1.20
Transfer/sec:      4.01MB
"""

CLOSED_READ_ERRORS = r"""Running 2s test @ http://127.0.0.1:18901/close
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.10s, 0.00B read
  Socket errors: connect 0, read 21918, write 0, timeout 0
Requests/sec:      0.00
Transfer/sec:       0.00B
"""

WITHOUT_LATENCY_FLAG = r"""Running 1s test @ http://127.0.0.1:18901/ok
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   187.35us  346.03us   4.43ms   97.60%
    Req/Sec    58.98k    13.92k   78.23k    63.64%
  64453 requests in 1.10s, 10.14MB read
Requests/sec:  58594.75
Transfer/sec:      9.22MB
"""

ALL_TIMED_OUT = r"""Running 2s test @ http://127.0.0.1:18901/slow
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.00s, 1.56MB read
Requests/sec:      0.00
Transfer/sec:    799.13KB
"""


@pytest.mark.parametrize(
    ("text", "requests", "rps", "p50_ms", "p99_ms", "read_bytes", "transfer_bytes_s"),
    [
        pytest.param(SMALL_200_C50, 117120, 58482.80, 0.72, 1.86, round(18.43 * 1024**2), round(9.20 * 1024**2),
                     id="c50-us-and-ms-percentiles"),
        pytest.param(CONFLICT_409_C50, 110894, 55369.37, 0.87, 1.35, round(19.04 * 1024**2), round(9.50 * 1024**2),
                     id="c50-all-409"),
        pytest.param(LATENCY_C1, 14252, 6787.24, 0.136, 1.85, round(2.24 * 1024**2), round(1.07 * 1024**2),
                     id="c1-microseconds"),
        pytest.param(DOWNLOAD_3MB_GB_READ, 983, 484.34, 15.24, 32.15, round(2.75 * 1024**3), round(1.35 * 1024**3),
                     id="gigabytes-read"),
        pytest.param(SLOW_SECONDS, 6, 1.20, 1430.0, 1440.0, round(20.11 * 1024**2), round(4.01 * 1024**2),
                     id="seconds-with-trailing-space"),
        pytest.param(CLOSED_READ_ERRORS, 0, 0.0, 0.0, 0.0, 0, 0, id="no-request-completed"),
        pytest.param(ALL_TIMED_OUT, 0, 0.0, 0.0, 0.0, round(1.56 * 1024**2), round(799.13 * 1024),
                     id="kilobytes-transfer"),
    ],
)
def test_summary(text, requests, rps, p50_ms, p99_ms, read_bytes, transfer_bytes_s):
    result = parse(text)
    assert (result.requests, result.rps) == (requests, rps)
    assert (result.percentiles_ms[50.0], result.percentiles_ms[99.0]) == (p50_ms, p99_ms)
    assert (result.read_bytes, result.transfer_bytes_s) == (read_bytes, transfer_bytes_s)
    assert sorted(result.percentiles_ms) == [50.0, 75.0, 90.0, 99.0]


@pytest.mark.parametrize(
    ("text", "duration_s"),
    [
        pytest.param(SMALL_200_C50, 2.0, id="seconds"),
        pytest.param(LATENCY_C1, 2.1, id="fraction"),
        pytest.param(SLOW_SECONDS, 5.01, id="long"),
    ],
)
def test_duration(text, duration_s):
    assert parse(text).duration_s == duration_s


@pytest.mark.parametrize(
    ("text", "non_2xx_3xx", "socket_errors", "errors"),
    [
        pytest.param(SMALL_200_C50, 0, {}, 0, id="clean"),
        pytest.param(CONFLICT_409_C50, 110894, {}, 0, id="every-response-non-2xx"),
        pytest.param(CLOSED_READ_ERRORS, 0, {"connect": 0, "read": 21918, "write": 0, "timeout": 0}, 21918,
                     id="read-errors"),
        pytest.param(SLOW_SECONDS, 0, {}, 0, id="slow-but-clean"),
    ],
)
def test_errors(text, non_2xx_3xx, socket_errors, errors):
    result = parse(text)
    assert (result.non_2xx_3xx, result.socket_errors, result.errors) == (non_2xx_3xx, socket_errors, errors)


@pytest.mark.parametrize(
    ("value", "unit", "ms"),
    [
        pytest.param("136.00", "us", 0.136, id="us"),
        pytest.param("822.00", "us", 0.822, id="us-no-float-noise"),
        pytest.param("0.87", "ms", 0.87, id="ms"),
        pytest.param("1.43", "s", 1430.0, id="s"),
        pytest.param("1.50", "m", 90_000.0, id="m"),
        pytest.param("0.00", "us", 0.0, id="zero"),
    ],
)
def test_to_ms(value, unit, ms):
    assert to_ms(value, unit) == ms


@pytest.mark.parametrize(
    ("value", "unit", "size"),
    [
        pytest.param("0.00", "B", 0, id="B"),
        pytest.param("512.00", "B", 512, id="bytes"),
        pytest.param("812.84", "KB", round(812.84 * 1024), id="KB-is-KiB"),
        pytest.param("1.00", "MB", 1024**2, id="MB-is-MiB"),
        pytest.param("2.75", "GB", round(2.75 * 1024**3), id="GB-is-GiB"),
    ],
)
def test_to_bytes(value, unit, size):
    assert to_bytes(value, unit) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "not a finished wrk run", id="empty"),
        pytest.param(SMALL_200_C50.split("Requests/sec")[0], "Requests/sec", id="cut-before-rps"),
        pytest.param("unable to connect to 127.0.0.1:1 Connection refused\n", "not a finished wrk run",
                     id="connect-failed"),
        pytest.param(WITHOUT_LATENCY_FLAG, "--latency", id="without-latency-flag"),
    ],
)
def test_not_a_finished_run(text, message):
    with pytest.raises(WrkParseError, match=message):
        parse(text)


def test_the_instruction_count_is_read_from_callgrind_s_summary() -> None:
    from bench.instructions import instructions
    from bench.procs import BenchError

    assert instructions("# callgrind format\nevents: Ir\nsummary: 311644000\ntotals: 311644000\n") == 311644000
    with pytest.raises(BenchError, match="no summary"):
        instructions("events: Ir\n")
