"""serve_from_heap: chunk-sized buffers stop costing a page fault per page."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from piwheels.heap import limit_arenas, serve_from_heap

GLIBC = platform.libc_ver()[0] == "glibc"

# Run in a fresh interpreter: the setting is process-wide, and this process may have made it
# already (a File Juggler in another test does). A worker thread, as the File Juggler's, gets an
# arena of its own, which glibc trims as eagerly as the main one.
_FAULTS = """
import resource, sys, threading, cbor2
from piwheels.heap import serve_from_heap
message = cbor2.dumps(["CHUNK", 0, bytes(1 << 20)])
def churn():
    global per_chunk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(64):
        # as the File Juggler does: the message received, its chunk decoded, both freed
        received = bytes(bytearray(message))
        chunk = cbor2.loads(received)[2]
        del received, chunk
    per_chunk = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 64
print(serve_from_heap(1 << 20))
worker = threading.Thread(target=churn)
worker.start()
worker.join()
print(per_chunk)
"""


@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
def test_chunk_buffers_are_reused_not_faulted_in() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True
    )
    served, per_chunk = done.stdout.split()
    assert served == "True"
    # Without the setting, glibc 2.36 faults in all 256 pages of every chunk afresh here
    # (about 266 faults a chunk); reused heap memory, none after the first few chunks.
    assert float(per_chunk) < 32


def test_smaller_sizes_never_lower_the_setting() -> None:
    first = serve_from_heap(1 << 20)
    assert first is GLIBC
    # Already arranged for: answered without asking glibc again.
    assert serve_from_heap(1 << 10) is first


@pytest.mark.skipif(GLIBC, reason="glibc is tuned")
def test_elsewhere_nothing_is_done() -> None:
    assert serve_from_heap(1 << 20) is False


# Without the limit, glibc gives a new thread an arena of its own at its first allocation.
_ARENAS = """
import ctypes, sys, threading
from piwheels.heap import limit_arenas
print(limit_arenas(int(sys.argv[2])))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
thread = threading.Thread(target=libc.malloc, args=(1000,))
thread.start()
thread.join()
libc.fopen.restype = ctypes.c_void_p
out = libc.fopen(sys.argv[1].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fclose(ctypes.c_void_p(out))
"""


@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
def test_limited_arenas_keep_threads_on_the_main_one(tmp_path: Path) -> None:
    info = tmp_path / "malloc.xml"
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS, str(info), "1"], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True"]
    assert info.read_text().count("<heap nr=") == 1


@pytest.mark.skipif(GLIBC, reason="glibc is tuned")
def test_elsewhere_arenas_are_not_limited() -> None:
    assert limit_arenas(1) is False
