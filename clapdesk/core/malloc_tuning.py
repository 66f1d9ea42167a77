"""Keep the model's working memory in the process between batches (glibc only).

An audio window's activations are tens of megabytes (a batch of four holds 34 MB in one stage-one
MLP tensor alone). glibc serves blocks that large with fresh `mmap`s and hands freed memory back
to the system at once, so every layer of every batch faults in, and zero-fills, new pages: about
a million page faults per minute of indexing on the project's 2-core machine, and 10-25 % of a
window's time. Telling glibc to serve those blocks from its heap, to keep what is freed, and to
use one arena for all threads (the model runs in a worker thread in the app) cuts the faults
about sevenfold. The price is that the process keeps its peak working set (a few hundred MB
while a model is loaded, which the weights already dwarf).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
M_ARENA_MAX = -8

TRIM_THRESHOLD = 512 << 20  # give memory back only when this much lies free at the heap's top
TOP_PAD = 64 << 20  # grow the heap in steps this large

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True if they are in force (glibc found)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD),
                (M_ARENA_MAX, 1))
    _applied = all(mallopt(param, value) == 1 for param, value in settings)
    if not _applied:
        log.info("glibc refused a malloc setting; model memory is handled as usual")
    return _applied
