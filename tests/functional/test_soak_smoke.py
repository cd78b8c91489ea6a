"""The soak harness itself, run for about 20 seconds: `python bench/soak.py --minutes 0.3`.

Real processes on 127.0.0.1 (the soak's aiohttp upstream, errorproxy, two
upstream kills and restarts); checks that the JSON it writes has samples,
every kind of outcome and the verdict's fields, and that it left no proxy
process running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

SAMPLE_KEYS = {"t", "rss_mib", "rss_max_mib", "fds", "upstream_conns", "upstream_close_wait", "upstream_sockets",
               "pids", "requests", "latency_ms", "restarts", "upstream_errors"}
CHECKS = {"rss", "after_restarts", "quiet_end", "outcomes", "tracebacks", "processes"}


@pytest.mark.slow
def test_a_short_soak_writes_samples_and_a_verdict(tmp_path):
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--minutes", "0.3", "--restart-every", "7", "--sample-every", "2",
         "--concurrency", "16", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode in (0, 1), f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    result = json.loads(out.read_text())

    samples = result["samples"]
    assert len(samples) >= 6
    assert all(SAMPLE_KEYS <= set(sample) for sample in samples)
    assert all(sample["rss_mib"] > 10 and sample["fds"] > 5 and sample["pids"] for sample in samples)
    assert [sample["t"] for sample in samples] == sorted(sample["t"] for sample in samples)
    assert max(sample["upstream_conns"] for sample in samples) >= 1

    assert len(result["restarts"]) == 2
    assert all(restart["up_at"] > restart["down_at"] for restart in result["restarts"])

    summary = result["summary"]
    for outcome in ("ok", "rewritten", "cut", "restart", "client_abort"):
        assert summary["requests"].get(outcome, 0) > 0, (outcome, summary["requests"])
    assert summary["latency_ms"]["p50"] is not None and summary["latency_ms"]["n"] > 0
    assert {"rss_mib", "fds", "upstream_conns"} <= set(summary)
    assert summary["upstream_errors"]["connection_refused"] > 0  # the proxy saw the upstream down

    verdict = result["verdict"]
    assert isinstance(verdict["flat"], bool) and verdict["rule"]
    assert set(verdict["checks"]) == CHECKS
    assert verdict["flat"] == all(check["ok"] for check in verdict["checks"].values())
    assert done.returncode == (0 if verdict["flat"] else 1)
    assert f"flat: {str(verdict['flat']).lower()}" in done.stdout

    config = result["config"]
    assert (config["minutes"], config["restart_every_s"], config["concurrency"]) == (0.3, 7.0, 16)
    assert config["commit"] and config["machine"]["nproc"] >= 1

    for pid in {pid for sample in samples for pid in sample["pids"]}:
        assert b"proxy" not in _cmdline(pid), f"proxy process {pid} outlived the soak"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone, as it should be
        return b""
