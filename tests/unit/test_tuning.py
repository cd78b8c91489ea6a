"""Process tuning applied by `errorproxy run`: glibc malloc thresholds and a frozen start-up heap."""

from __future__ import annotations

import ctypes.util
import gc
import platform

import pytest

from proxy.ops.tuning import MALLOC, raise_open_files, tune_gc, tune_malloc

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


def test_tune_gc_freezes_what_exists_and_keeps_the_thresholds() -> None:
    thresholds = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()


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
