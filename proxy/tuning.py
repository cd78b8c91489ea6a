"""Process settings that make a long-running proxy faster, applied by `errorproxy run`.

Measured with `python bench/run.py` (see bench/README.md):

- glibc malloc hands buffers above 128 KiB back to the kernel as soon as they
  are freed, so each body chunk of a large response costs an mmap, a munmap
  and page faults. Raising the mmap and trim thresholds keeps those buffers
  in the heap for reuse, for a few MB more resident memory.
- The cyclic garbage collector walks every tracked object of start-up (the
  modules, settings, templates) again and again. `gc.freeze()` moves those out
  of its sight, and a larger first generation makes collections rarer; a
  request's objects are freed by reference counting anyway.

A variable set in the environment (MALLOC_MMAP_THRESHOLD_ and the like, read
by glibc itself) is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger("errorproxy")

# mallopt(3) parameters, with the environment variable that sets each one.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC = (
    (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 16 * 1024 * 1024),
    (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 256 * 1024 * 1024),
    (_M_TOP_PAD, "MALLOC_TOP_PAD_", 16 * 1024 * 1024),
)
GC_THRESHOLD = (50_000, 20, 100)  # generation 0 from CPython's 700


def tune_malloc(environ: os._Environ[str] | dict[str, str] = os.environ) -> list[str]:
    """Set glibc's malloc thresholds (where glibc is the C library); the names of those set."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return []  # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = []
    for parameter, variable, value in MALLOC:
        if variable not in environ and mallopt(parameter, value) == 1:
            done.append(variable)
    return done


def tune_gc() -> None:
    """Call once start-up is over: what exists now is never collected, and collections are rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
