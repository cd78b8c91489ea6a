"""Process tuning applied by `errorproxy run`: glibc malloc thresholds and a frozen start-up heap."""

from __future__ import annotations

import ctypes.util
import gc
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.ops import tuning
from proxy.ops.tuning import (GC_PER_CONNECTION, GC_THRESHOLD, MALLOC, count_connection, raise_open_files,
                               tune_gc, tune_malloc)

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or ctypes.util.find_library("c") is None,
                           reason="mallopt is glibc's")


@glibc
def test_every_malloc_threshold_is_set_when_the_environment_sets_none() -> None:
    assert tune_malloc({}) == [variable for _, variable, _ in MALLOC]


@glibc
def test_a_threshold_set_in_the_environment_is_left_to_glibc() -> None:
    done = tune_malloc({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert "MALLOC_MMAP_THRESHOLD_" not in done
    assert done == ["MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"]


def test_tune_gc_freezes_what_exists_and_raises_only_the_young_generations_threshold() -> None:
    thresholds = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (GC_THRESHOLD, *thresholds[1:])
        assert GC_THRESHOLD > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_past_a_hundred_connections_the_young_threshold_follows_them() -> None:
    thresholds = gc.get_threshold()
    already = tuning._connections  # those of this process's own servers, if any are open
    try:
        tune_gc()
        for opened in range(already + 1, already + 1001):
            count_connection(1)
            assert gc.get_threshold() == (max(GC_THRESHOLD, GC_PER_CONNECTION * opened), *thresholds[1:])
        assert gc.get_threshold()[0] >= 20_000
        for _ in range(1000):
            count_connection(-1)
        assert gc.get_threshold() == (max(GC_THRESHOLD, GC_PER_CONNECTION * already), *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = raise_open_files()
        assert raised > 256
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# A real `python -m proxy run`; a thread in it waits until tune_gc has frozen the start-up heap
# (start-up is over), then prints what the serving process is like, and stops it.
_INSIDE = """
import gc, json, os, runpy, signal, sys, threading, time
sys.argv = ["errorproxy", "run", "--config", sys.argv[1], "--listen", "127.0.0.1:0"]

def look():
    deadline = time.monotonic() + 20
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    print(json.dumps({"started": gc.get_freeze_count() > 0, "collecting": gc.isenabled(),
                      "modules": sorted(set(sys.modules) & {"redis", "cryptography.x509"})}))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=look, daemon=True).start()
runpy.run_module("proxy", run_name="__main__")
"""


@pytest.mark.parametrize(("route", "upstream", "modules"), [
    pytest.param("", "http://127.0.0.1:9", [], id="plain"),
    pytest.param("    concurrency: {lock: 'redis://127.0.0.1:9/0'}\n", "http://127.0.0.1:9", ["redis"], id="redis-lock"),
    pytest.param("", "https://127.0.0.1:9", ["cryptography.x509"], id="https-upstream"),
])
def test_a_started_proxy_collects_garbage_and_imports_only_what_its_config_uses(tmp_path, route, upstream,
                                                                                modules) -> None:
    """Collection is off while `run` starts (its imports allocate much and free little) and on once
    it serves; redis-py and cryptography, some 100 ms of start-up, only for a config that uses them."""
    config = tmp_path / "proxy.yaml"
    config.write_text(f"upstreams:\n  app: {{url: '{upstream}'}}\nroutes:\n  - match: {{path_prefix: /}}\n"
                      f"    upstream: app\n{route}")
    result = subprocess.run([sys.executable, "-c", _INSIDE, str(config)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env={**os.environ, "ERRORPROXY_ADMIN": "off"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"started": True, "collecting": True, "modules": modules}, result.stderr
