"""Keep the model's working memory in the process between batches (glibc only).

An audio window's activations are megabytes to tens of megabytes each. glibc serves blocks
above its (adaptive) mmap threshold with fresh `mmap`s and hands freed memory back to the system
at once, so every layer of every batch faults in, and zero-fills, new pages: about a million page
faults per minute of indexing on the project's 2-core machine. Telling glibc to serve blocks up
to 32 MB from its heaps and to keep what is freed cuts the faults several times over. Larger
blocks still get their own mappings, so an allocation never fails for want of heap, and each
thread keeps its own arena, so the window's thread never waits on the model's malloc lock. The
price is that the process keeps its peak working set (a few hundred MB while a model is loaded,
which the weights already dwarf).
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
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 512 << 20  # give memory back only when this much lies free at the heap's top
TOP_PAD = 64 << 20  # grow the heap in steps this large
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap (glibc's largest allowed value)

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
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                (M_TOP_PAD, TOP_PAD))
    _applied = all(mallopt(param, value) == 1 for param, value in settings)
    if not _applied:
        log.info("glibc refused a malloc setting; model memory is handled as usual")
    return _applied
