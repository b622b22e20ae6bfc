"""What the File Juggler knows of each file it is fetching from a slave.

A transfer is made by EXPECT (from the Slave Driver), taken up when the slave's file
connection says HELLO, fed chunk by chunk, then stored (off the File Juggler's loop, see
:mod:`piwheels.master_support.file_store`) and judged; VERIFY reads the verdict.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from piwheels import protocols
from piwheels.protocols import Protocol
from piwheels.records.builds import FileState

CHUNK_SIZE = 1 << 20


class TransferError(Exception):
    """A transfer that cannot go on: what VERIFY (or EXPECT) reports, of a *kind* the File
    Juggler's control protocol declares (protocols.internal.FILE_ERRORS)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.failure = protocols.file_juggler_control.failure(kind, message)


class Hashing:
    """A transfer's running SHA-256, fed in order on the hashing thread."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.queued = 0  # bytes handed to the hashing thread (written by the loop only)
        self.done = 0  # bytes hashed (written by the hashing thread only)
        self.written_back = 0  # bytes whose writeback has been started (hashing thread only)
        # Set by the loop when the backlog stops it fetching: only then must a hashed chunk
        # wake it (waking it for every chunk cost a context switch and a pipe write each).
        self.stalled = False

    @property
    def backlog(self) -> int:
        return (self.queued - self.done + CHUNK_SIZE - 1) // CHUNK_SIZE


@dataclass
class Transfer:
    slave_id: int
    file: FileState
    target: Path
    temp: Path
    fd: int
    slave_address: bytes  # the slave's routing id on its own queue, and its IP there
    slave_peer: str
    slave_key: str  # the builder key its file connection must present ("" for none)
    address: bytes | None = (
        None  # the file connection's (queue number, routing id), once it said HELLO
    )
    dialect: Protocol = protocols.file_juggler  # the file connection's (its HELLO's)
    next_offset: int = 0  # the next offset not yet asked for
    outstanding: dict[int, int] = field(default_factory=dict)  # offset -> length
    received: int = 0
    hashing: Hashing = field(default_factory=Hashing)
    last_activity: float = field(default_factory=time.monotonic)
    storing: bool = False  # every byte is in; a worker thread is checking and storing it
    forgotten: bool = False  # dropped while storing: the worker's result is to be undone
    verdict: str | None = None  # None while running; "" when verified; else the error

    @property
    def complete(self) -> bool:
        return self.received >= self.file.filesize
