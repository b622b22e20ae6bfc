"""Keep chunk-sized buffers on the heap: a file transfer must not page-fault for every chunk.

glibc's malloc serves a request at or above its mmap threshold (128 KiB at first) with fresh
pages from ``mmap`` and hands them back to the kernel on ``free``. The threshold then rises to
the size just freed, but a later request of that very size still goes to ``mmap``, and the heap
is trimmed back to the kernel whenever more than twice the threshold lies free at its top. A
transfer allocates and frees a few bytes objects of one chunk each per chunk (the received
message, the decoded chunk, the chunk read from disk), so each of them used to arrive on new
pages, and each page costs a fault and the kernel's zeroing before the copy into it: a quarter
of a million faults per gigabyte. On the 2-core development VM that was most of the File
Juggler's CPU time (see BENCHMARKS.md). Raising both thresholds above the chunk size lets the
same heap memory serve chunk after chunk.

Only glibc needs (and has) this; elsewhere :func:`serve_from_heap` does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import threading

__all__ = ["limit_arenas", "release_free_memory", "serve_from_heap"]

log = logging.getLogger(__name__)

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_lock = threading.Lock()
_served = 0  # the largest request size already arranged for


def serve_from_heap(size: int) -> bool:
    """Have requests of up to *size* bytes served from (and freed back to) the heap.

    The setting is process-wide and only ever raised, so callers with different chunk sizes
    cannot undo each other. Returns whether the allocator now behaves so: False off glibc, or
    where glibc refuses the value (32-bit builds cap the mmap threshold at 512 KiB).
    """
    global _served  # one setting per process, like malloc's own
    with _lock:
        if size <= _served:
            return True
        if platform.libc_ver()[0] != "glibc":
            return False
        libc = ctypes.CDLL(None)
        # Twice the size for the mmap threshold leaves room for the object headers and a message
        # envelope around a chunk; the trim threshold keeps a couple of such buffers at the top of
        # the heap rather than returning them between chunks.
        if not (
            libc.mallopt(_M_MMAP_THRESHOLD, 2 * size) and libc.mallopt(_M_TRIM_THRESHOLD, 4 * size)
        ):
            log.debug("glibc refused an mmap threshold of %d bytes", 2 * size)
            return False
        _served = size
        return True


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the kernel (glibc's ``malloc_trim``).

    A burst of work (a thousand slaves connecting at once, a flood of hostile messages) leaves
    the heaps of the threads that handled it mostly free but still resident: glibc returns only
    what lies at the very top of a heap. After one such burst the master stayed at 4.6 times its
    resting size.
    """
    if platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(None).malloc_trim(0)


def limit_arenas(count: int) -> bool:
    """Have every thread of this process allocate from at most *count* malloc arenas.

    glibc gives each new thread an arena of its own, up to 8 a core, then shares them. What lies
    free at the top of an arena other than the main one stays resident until it exceeds the trim
    threshold (4 MiB once :func:`serve_from_heap` has run), and ``malloc_trim`` never gives it
    back: after a hostile campaign the master's arenas held a fair part of what it kept that
    way, free for good (#13). Its threads take turns on the interpreter lock anyway. To take
    effect for every thread, call this before any other thread starts. Returns whether glibc
    took the setting (False elsewhere).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, count))
