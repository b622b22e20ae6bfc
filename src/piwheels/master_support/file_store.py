"""The File Juggler's work off its loop: hashing chunks as they come, storing finished files.

Chunks that arrive in order are hashed on a thread of their own, which also starts the
writeback of what it has hashed, so that the final fsync finds little left to write. A
finished file is stored on a worker thread: its hash checked (the file read back from disk if
its chunks came out of order), then fsync, rename into place, fsync of the directory. Why
neither runs on the loop: see :mod:`piwheels.master.file_juggler`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path
from typing import Any

from piwheels.master_support.transfers import CHUNK_SIZE, Hashing, Transfer

READ_BLOCK = 1 << 20
WRITEBACK = 8 * CHUNK_SIZE  # hashed bytes of a transfer after which their writeback is started


def hash_chunk(transfer: Transfer, hashing: Hashing, chunk: bytes | memoryview) -> bool:
    """Feed *chunk* to *hashing*, on the hashing thread (hashlib lets go of the interpreter
    lock meanwhile); whether the loop waits for it, and must be woken."""
    hashing.hasher.update(chunk)
    hashing.done += len(chunk)
    if hashing.done - hashing.written_back >= WRITEBACK and transfer.fd >= 0:
        # The disk gets the file while the rest arrives, rather than all of it at the final
        # fsync, which the transfer's verdict waits for.
        _start_writeback(transfer.fd, hashing.written_back, hashing.done - hashing.written_back)
        hashing.written_back = hashing.done
    if hashing.stalled:
        hashing.stalled = False
        return True
    return False


def store(transfer: Transfer) -> str:
    """On a worker thread: check the file and put it in place, durably; the verdict ("" when
    it is in place, else why not)."""
    file = transfer.file
    try:
        digest = _digest(transfer)
        if digest != file.filehash:
            verdict = f"{file.filename}: SHA256 {digest} does not match {file.filehash}"
        else:
            os.fsync(transfer.fd)
            # Unpublished leftovers (a master stopped between this and recording) may be
            # replaced; the Slave Driver never sends a name that is already published.
            transfer.temp.replace(transfer.target)
            _fsync_directory(transfer.target.parent)
            verdict = ""
    except OSError as exc:
        verdict = f"cannot store {file.filename}: {exc}"
    except Exception as exc:  # never lose the answer: the slave would wait for ever
        verdict = f"cannot store {file.filename}: {exc!r}"
    return verdict


def _digest(transfer: Transfer) -> str:
    if transfer.hashing.done != transfer.file.filesize:
        # chunks came out of order: hash what is on disk instead, a block at a time
        hasher = hashlib.sha256()
        with transfer.temp.open("rb") as fh:
            while block := fh.read(READ_BLOCK):
                hasher.update(block)
        return hasher.hexdigest()
    return transfer.hashing.hasher.hexdigest()


def _load_sync_file_range() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writeback, wait for nothing


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range of *fd* to disk; only a head start for the fsync
    that follows (which alone makes the file durable), so failure here is no matter, and so
    is a race with the loop closing *fd*: at worst another file is written back early."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _fsync_directory(path: Path) -> None:
    """Make a rename in *path* durable (without it a crash can undo the rename)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
