"""Every message on every socket, declared once.

Each :class:`Protocol` is written from the master's side: ``recv`` is what the master's task
receives, ``send`` what it sends. The peer uses ``reversed(protocol)``. A message with no data
travels as a bare string (``"IDLE"``); one whose data is a record travels as ``[action, *fields]``
(``["BUILD", "numpy", "1.14.0"]``), and any other as ``[action, data]`` — the seed's wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from piwheels.codec import (
    AnyValue,
    Bool,
    Bytes,
    DateTime,
    Duration,
    Float,
    Int,
    ListOf,
    MapOf,
    Optional,
    OptStr,
    Reason,
    Record,
    SetOf,
    Shape,
    Str,
    Text,
)
from piwheels.failures import MAX_WANTS, Diagnosis, Want
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.records.projects import Statistics
from piwheels.records.slaves import SlaveHello, SlaveStats


class NoData:
    """Marks a message that carries no data (sent as a bare string)."""


NO_DATA = NoData()
Spec = Shape | None  # None: the message has no data


@dataclass(frozen=True)
class Protocol:
    """The messages one end of a socket may receive and send.

    ``max_items`` marks a protocol spoken with peers outside the master (slaves, operators'
    tools): a message of more CBOR items than that is refused before it is decoded (see
    :mod:`piwheels.transport`). The master's tasks trust each other and have no such bound.
    """

    name: str
    recv: dict[str, Spec] = field(default_factory=dict)
    send: dict[str, Spec] = field(default_factory=dict)
    max_items: int | None = None

    def __reversed__(self) -> Protocol:
        return Protocol(
            f"{self.name} (peer)", recv=self.send, send=self.recv, max_items=self.max_items
        )


# The most CBOR items a peer's message may hold: a BUILT of 100 files, each with 256
# dependencies, is ~78,000. Decoded, 100,000 items are a few MB; unbounded, 8 MB of empty
# arrays decoded into 8 million lists took ~600 MB.
PEER_MAX_ITEMS = 100_000


# -- shared records ---------------------------------------------------------------------------

DEPENDENCY = Record([Str, Str], Dependency)
FILE_STATE = Record(
    [Str, Int, Str, Str, Str, Str, Str, Str, SetOf(DEPENDENCY, max_items=256), OptStr],
    FileState,
)
DIAGNOSIS = Record(
    [
        Str,  # the cause: checked against failures.Cause where it is used
        Text,
        ListOf(Record([Str, Str], Want), max_items=MAX_WANTS),
        ListOf(Str, max_items=MAX_WANTS),
    ],
    Diagnosis,
)
BUILD_RESULT = Record(
    [Bool, Duration, Text, ListOf(FILE_STATE, max_items=100), Optional(DIAGNOSIS)],
    BuildResult,
    required=4,  # the diagnosis is ours: the original slaves' BUILT has four fields
)
SLAVE_HELLO = Record([Duration, Duration, Str, Str, Str, Str, Str, Str, Str, Str], SlaveHello)
SLAVE_STATS = Record([DateTime, Int, Int, Int, Int, Float, Float], SlaveStats)
PACKAGE_VERSION = Record([Str, Str])


# -- the wire protocols of the spec (normative) -----------------------------------------------

slave_driver = Protocol(
    "slave driver",
    recv={
        "HELLO": SLAVE_HELLO,
        "IDLE": SLAVE_STATS,
        "BUSY": SLAVE_STATS,
        "BUILT": BUILD_RESULT,
        "SENT": None,
        "BYE": None,
        # Ours, not the spec's: a slave that lost its master mid-build says HELLO to the new
        # one, then RESUME with the build in hand instead of IDLE; CONT keeps it, DONE drops it.
        "RESUME": PACKAGE_VERSION,
    },
    send={
        "ACK": Record([Int, Str]),  # slave_id, pypi_url
        "SLEEP": None,
        "DIE": None,
        "BUILD": PACKAGE_VERSION,
        "CONT": None,
        "SEND": Str,  # filename
        "DONE": None,
    },
    max_items=PEER_MAX_ITEMS,
)

# The spec's CHUNK carries only the bytes; with several FETCHes in flight the master must know
# which one a chunk answers, so (as the original implementation does) it carries the offset too.
file_juggler = Protocol(
    "file juggler",
    recv={"HELLO": Int, "CHUNK": Record([Int, Bytes])},
    send={"FETCH": Record([Int, Int]), "DONE": None},
    max_items=PEER_MAX_ITEMS,
)

IMPORT_REQUEST = Record(
    [Int, Str, Str, OptStr, Bool, Duration, Text, ListOf(FILE_STATE, max_items=100)]
)
# Beyond the spec's IMPORT / REMOVE / REBUILD, the operators' other repairs (piw-add):
# ADD records a package (version None) or a version by hand, optionally skipped; SKIP sets or
# (with "") clears the reason never to build a package or version; YANK marks a version yanked or
# not; RETRY forgets a version's failed builds (on one ABI, or all) so they are queued again;
# PRIORITY puts a version (or a package's every version) at the front of the build queue, or
# (False) takes it back to its place (see migrations/0010_queue_priority.sql); RETRYCAUSE and
# INSTALLED requeue failures by cause and dep-waits on a Debian package (migration 0012).
mr_chase = Protocol(
    "mr chase",
    recv={
        "IMPORT": IMPORT_REQUEST,  # slave_id, package, version, abi_tag, status, duration, ...
        "REMOVE": Record([Str, Str, Str]),  # package, version, skip reason ("" = rebuild)
        "REBUILD": Record([Str, OptStr]),  # part, package
        "SENT": None,
        "ADD": Record([Str, OptStr, Str]),  # package, version, skip reason
        "SKIP": Record([Str, OptStr, Str]),  # package, version (None: the package), reason
        "YANK": Record([Str, Str, Bool]),  # package, version, yanked
        "RETRY": Record([Str, Str, OptStr]),  # package, version, abi (None: every ABI)
        "PRIORITY": Record([Str, OptStr, Bool]),  # package, version (None: the package), on
        # every standing failure of a cause (failures.Cause), on one ABI or all, queued again
        "RETRYCAUSE": Record([Str, OptStr]),
        # a Debian package now installed on one ABI's builders (or all): its dep-waits queued
        "INSTALLED": Record([Str, OptStr]),
    },
    send={"ERROR": Reason, "SEND": Str, "DONE": None},
    max_items=PEER_MAX_ITEMS,
)

# Master -> every task (PUSH/PULL).
task_control = Protocol(
    "task control",
    recv={"PAUSE": None, "RESUME": None, "QUIT": None},
)

# Operators' tools and the monitor -> the master (its --control-queue). HELLO asks the master to
# publish its whole state on the status queue at once (a monitor that connects late). SLEEP,
# WAKE and KILL act on one slave (its id) or, with None, on all of them.
master_commands = Protocol(
    "master commands",
    recv={
        "PAUSE": None,
        "RESUME": None,
        "QUIT": None,
        "HELLO": None,
        "SLEEP": Optional(Int),
        "WAKE": Optional(Int),
        "KILL": Optional(Int),
    },
    max_items=PEER_MAX_ITEMS,
)

# -- the master's internal protocols ----------------------------------------------------------

# Tasks -> the master's main thread: a task that cannot go on asks everything to stop.
master_control = Protocol("master control", recv={"QUIT": None, "FAILED": Record([Str, Text])})

# Clients -> Seraph -> an Oracle. Requests are declared; replies are OK(data) or ERROR(message),
# and each client method checks the data it expects.
# package, the ABIs its skips were worked out for, the row as JSON (db.database.ProjectRow):
# made in Cloud Gazer's fetch processes and passed through, the database checking its contents
PROJECT_ROW = Record([Str, Str, Text])
oracle = Protocol(
    "oracle",
    recv={
        "GETPKGS": None,
        "GETSERIAL": None,
        "SETSERIAL": Int,
        # projects recorded in one transaction -> [(package, why), ...] for those refused
        "SETPROJECTS": ListOf(PROJECT_ROW, max_items=1000),
        "REMOVEPROJECT": Str,
        "GETABIS": None,
        "GETQUEUE": Int,  # how many entries per ABI
        "GETHASHES": ListOf(Str),  # filenames -> published SHA256
        "QUEUED": Record([Str, Str, Str]),  # package, version, abi -> whether it awaits a build
        # slave_id, package, version, abi_tag, build result
        "LOGBUILD": Record([Int, Str, Str, Str, BUILD_RESULT]),
        # slave_id, package, version, abi_tag, how long it built, why it was lost
        "LOSTBUILD": Record([Int, Str, Str, Str, Duration, Text]),
        "REQUEUEDUE": None,  # give-backs whose time has come -> their build ids
        "GETSTATS": None,  # -> the database's figures for Big Brother
        "SAVEPAGES": ListOf(Record([Str, Str])),  # [kind, package]: the Secretary's backlog
        "TAKEPAGES": None,  # -> [[kind, package], ...] (see migration 0009)
        "PUBLISHED": None,  # -> [[package, when its newest file was recorded (epoch)], ...]
        "SLAVEIDS": None,  # -> the first of a block of slave ids never given (0008_slave_ids)
        # Mr. Chase's repairs (see migrations/0003_operator_repairs.sql)
        "PKGEXISTS": Str,
        "VEREXISTS": PACKAGE_VERSION,
        "REMOVEVER": Record([Str, Str, Str]),  # -> filenames to delete from disk
        "ADDBYHAND": Record([Str, OptStr, Str]),
        "SETSKIP": Record([Str, OptStr, Str]),
        "SETYANKED": Record([Str, Str, Bool]),
        "RETRY": Record([Str, Str, OptStr]),  # -> how many failed builds were forgotten
        "SETPRIORITY": Record([Str, OptStr, Bool]),  # package, version (None: the package), on
        "RETRYCAUSE": Record([Str, OptStr]),  # cause, abi (None: all) -> builds requeued
        "DEBINSTALLED": Record([Str, OptStr]),  # Debian package, abi -> builds requeued
    },
    send={"OK": AnyValue(), "ERROR": Reason},
)

STATISTICS = Record(
    [Int] * 8 + [MapOf(Str, Int)] * 3 + [MapOf(Str, MapOf(Str, Int)), Int, Int, DateTime],
    Statistics,
)

# Tasks -> the Secretary -> the Scribe: pages to (re)write. BOTH is a project's index page and
# project page; PROJECT the project page alone.
web = Protocol(
    "web",
    recv={
        "BOTH": Str,
        "PROJECT": Str,
        "HOME": STATISTICS,
        "SEARCH": None,
    },
)

# An Oracle announces itself to Seraph, then answers one request at a time.
seraph_workers = Protocol("seraph workers", recv={"READY": None})

# The Architect -> the Slave Driver: the head of each ABI's queue, and its full length.
QUEUE_ENTRY = PACKAGE_VERSION
architect = Protocol(
    "architect",
    # heads, lengths, the newest build on record when they were read
    send={"QUEUE": Record([MapOf(Str, ListOf(QUEUE_ENTRY)), MapOf(Str, Int), Int])},
)

# The Slave Driver -> the File Juggler (REQ/REP): expect a file, then ask whether it arrived.
file_juggler_control = Protocol(
    "file juggler control",
    recv={
        # slave_id, package, file, and the slave's address and IP on its own queue: only a
        # file connection from that slave may send the file (see file_juggler.FileJuggler)
        "EXPECT": Record([Int, Str, FILE_STATE, Bytes, Str]),
        "VERIFY": Int,  # slave_id
        "FORGET": Int,  # slave_id: the slave went away, drop its transfer
        "STALLED": Int,  # slave_id -> seconds since its transfer's last chunk (None: none)
        # package, filenames: verified files of a build that was not recorded, to delete
        "DISCARD": Record([Str, ListOf(Str, max_items=100)]),
        "FREE": None,  # free space on the output disk
    },
    send={"OK": AnyValue(), "ERROR": Reason},
)


# The master -> every monitor (PUB/SUB on its --status-queue).
SLAVE_STATUS = Record(
    [
        Int,  # slave_id
        Str,  # label
        Str,  # abi_tag
        Str,  # platform_tag
        Str,  # state (SlaveState)
        Optional(PACKAGE_VERSION),  # the build under way
        Optional(DateTime),  # when that build started
        DateTime,  # first seen
        DateTime,  # last seen
        Optional(SLAVE_STATS),  # the resources it last reported
        Bool,  # told to sleep
    ]
)
status = Protocol(
    "status",
    send={
        "MASTER": Record([Str, DateTime, Str]),  # state ("running"/"paused"), started, version
        "QUEUE": MapOf(Str, Int),  # abi -> versions waiting
        "STATS": STATISTICS,
        "SLAVE": SLAVE_STATUS,
        "GONE": Int,  # slave_id
        # what just happened: when, slave_id, package, version, abi, succeeded, duration
        "BUILD": Record([DateTime, Int, Str, Str, Str, Bool, Duration]),
    },
)

# The master's main thread -> the Slave Driver: the monitor's commands for slaves.
slave_commands = Protocol(
    "slave commands",
    recv={"SLEEP": Optional(Int), "WAKE": Optional(Int), "KILL": Optional(Int)},
)
