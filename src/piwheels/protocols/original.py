"""The original piwheels' dialect of the wire protocols (its 0.23 slaves, which an operator's
fleet already runs), declared as strictly as the spec's, and how its messages become the ones
the Slave Driver and the File Juggler handle.

Where it departs from the spec (seeds/002) and from :mod:`.wire`:

- on the slave queue, every message with data is ``[action, data]``, a record's fields nested
  in a list of their own ("nested" framing);
- IDLE and BUSY report swap (total, free) between memory and the load average;
- SLEEP carries whether the master is paused, and a bare SLEEP stops the slave;
- BUILT's files have 11 fields: ``requires_python`` ninth, then the dependencies as a map of
  ``{tool: [package, ...]}`` in which the tool ``""`` lists the shared libraries no Debian
  package owns (by path), then a location (always "/simple", of no use to a master);
- on the file queue, raw ZeroMQ frames rather than CBOR ("frames" framing).

Durations (tag 2001) are as the spec's dialect sends them (:mod:`piwheels.cbor_bounds`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from piwheels.codec import (
    Bool,
    Bytes,
    DateTime,
    Duration,
    Float,
    Int,
    ListOf,
    MapOf,
    OptStr,
    Record,
    Str,
    Text,
)
from piwheels.protocols import wire
from piwheels.protocols.base import PEER_MAX_ITEMS, Dialect, Protocol
from piwheels.protocols.messages import Ack, Chunk, Fetch
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.records.slaves import SlaveStats

# The tool the original names "" (a library no Debian package owns), as it is recorded.
UNOWNED_LIBRARY = "library"


class OriginalStats(NamedTuple):
    """IDLE and BUSY in the original's order."""

    timestamp: datetime
    disk_total: int
    disk_free: int
    mem_total: int
    mem_free: int
    swap_total: int
    swap_free: int
    load_avg: float
    cpu_temp: float

    def standard(self) -> SlaveStats:
        return SlaveStats(
            self.timestamp,
            self.disk_total,
            self.disk_free,
            self.mem_total,
            self.mem_free,
            self.load_avg,
            self.cpu_temp,
            self.swap_total,
            self.swap_free,
        )


class OriginalFile(NamedTuple):
    """A file of the original's BUILT."""

    filename: str
    filesize: int
    filehash: str
    package_tag: str
    package_version_tag: str
    py_version_tag: str
    abi_tag: str
    platform_tag: str
    requires_python: str | None
    dependencies: dict[str, list[str]]  # tool ("apt", "pip", "") -> packages
    location: str

    def standard(self) -> FileState:
        dependencies = frozenset(
            Dependency(tool or UNOWNED_LIBRARY, package)
            for tool, packages in self.dependencies.items()
            for package in packages
        )
        return FileState(*self[:8], dependencies, self.requires_python)


class OriginalBuild(NamedTuple):
    """The original's BUILT: the spec's four fields, its files of 11."""

    status: bool
    duration: timedelta
    output: str
    files: list[OriginalFile]

    def standard(self) -> BuildResult:
        files = [file.standard() for file in self.files]
        return BuildResult(self.status, self.duration, self.output, files, None)


ORIGINAL_STATS = Record([DateTime, Int, Int, Int, Int, Int, Int, Float, Float], OriginalStats)
ORIGINAL_FILE = Record(
    [
        *wire.FILE_STATE.fields[:8],
        OptStr,
        MapOf(Str, ListOf(Str, max_items=256)),
        Str,
    ],
    OriginalFile,
)
ORIGINAL_BUILD = Record([Bool, Duration, Text, ListOf(ORIGINAL_FILE, max_items=100)], OriginalBuild)

slave_driver = Protocol(
    "slave driver (original)",
    recv={
        "HELLO": wire.SLAVE_HELLO,
        "IDLE": ORIGINAL_STATS,
        "BUSY": ORIGINAL_STATS,
        "BUILT": ORIGINAL_BUILD,
        "SENT": None,
        "BYE": None,
    },
    send={
        "ACK": Record([Int, Str], Ack),
        "SLEEP": Bool,  # whether the master is paused
        "DIE": None,
        "BUILD": wire.PACKAGE_VERSION,
        "CONT": None,
        "SEND": Str,
        "DONE": None,
    },
    max_items=PEER_MAX_ITEMS,
    framing="nested",
)

file_juggler = Protocol(
    "file juggler (original)",
    recv={"HELLO": Int, "CHUNK": Record([Int, Bytes], Chunk)},
    send={"FETCH": Record([Int, Int], Fetch), "DONE": None},
    max_items=PEER_MAX_ITEMS,
    framing="frames",
)


# The Slave Driver's messages as the original sends them (the replies need no change: SLEEP's
# data, whether the master is paused, is what the Slave Driver gives it).
slave_dialect = Dialect(
    "original",
    slave_driver,
    incoming={
        "IDLE": OriginalStats.standard,
        "BUSY": OriginalStats.standard,
        "BUILT": OriginalBuild.standard,
    },
)
