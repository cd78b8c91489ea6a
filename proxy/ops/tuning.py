"""Process settings that make a long-running proxy faster, applied by `errorproxy run`.

Measured with `python bench/run.py` (see bench/README.md):

- glibc malloc hands buffers above its mmap threshold back to the kernel as
  soon as they are freed, so body chunks of large responses cost an mmap, a
  munmap and page faults each. Raising the mmap and trim thresholds keeps
  those buffers in the heap for reuse: 1 MiB downloads went about 18% faster,
  and peak memory was lower, not higher (less fragmentation).
- The cyclic garbage collector's full collections walk every object made at
  start-up (modules, settings, templates). `gc.freeze()` takes those out of
  its sight.
- A request's objects die with it, by reference counting; the collector finds
  next to nothing. But it runs whenever the objects made since its last run
  outnumber those freed by its first threshold, 700 by default, and the
  requests in flight keep that many alive: with 50 connections, once every
  55 requests or so, about 3 µs a request (4% of the CPU); with 1,000
  connections, a fifth of the CPU. The threshold is 2,000, and 20 a
  connection past 100 connections: at 50 connections almost no collection
  runs; at 1,000, collecting takes under 2% of the CPU, and the p99 fell by
  20 to 35% (`python bench/gc_cost.py`). Higher is not better: what does make
  cycles, a client gone in the middle of an upload (an exception's traceback
  holds the frames that hold its buffers), waits longer to be freed. 100
  such uploads one after another held 25 MiB at 7,000, about 10 at 2,000
  (tests/functional/test_faults.py).
- A proxy holds two descriptors per request in flight (client and upstream),
  and a soft limit of 1,024 open files, still common, is reached at a few
  hundred connections. The soft limit is raised to the hard one.

A variable set in the environment (MALLOC_MMAP_THRESHOLD_ and the like, read
by glibc itself) is left alone. Each step is skipped where it has no meaning:
mallopt off glibc, the open-files limit on Windows (no `resource` module; its
sockets have no such soft limit).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


# mallopt(3) parameters, with the environment variable that sets each one.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC = (
    (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 16 * 1024 * 1024),
    (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 256 * 1024 * 1024),
    (_M_TOP_PAD, "MALLOC_TOP_PAD_", 16 * 1024 * 1024),
)
GC_THRESHOLD = 2_000  # the young generation's (CPython's is 700), up to 100 connections open
GC_PER_CONNECTION = 20  # and 20 a connection past that


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


def raise_open_files() -> int | None:
    """Raise the soft limit on open files to the hard limit; the soft limit now in force (None: no such limit here)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited soft limit may be refused (the kernel's nr_open still applies): ask for a million.
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


def tune_gc() -> None:
    """Call once start-up is over: what exists now is left out of every collection, the young
    generation's threshold is raised, and collection, which `errorproxy run` turns off while it
    starts, is on again."""
    global _older
    gc.collect()
    gc.freeze()
    _older = gc.get_threshold()[1:]
    gc.set_threshold(_young_threshold(), *_older)
    gc.enable()


_connections = 0  # client connections open in this process
_older: tuple[int, ...] | None = None  # the older generations' thresholds, once tune_gc has run


def _young_threshold() -> int:
    return max(GC_THRESHOLD, GC_PER_CONNECTION * _connections)


def count_connection(change: int) -> None:
    """A client connection opened (+1) or closed (-1): past 100 open, the young generation's
    threshold follows the connections, as the objects of the requests in flight do."""
    global _connections
    _connections += change
    if _older is not None and (_connections + 1) * GC_PER_CONNECTION > GC_THRESHOLD:
        gc.set_threshold(_young_threshold(), *_older)
