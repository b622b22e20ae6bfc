"""The spec's wire protocols (normative: seeds/002), spoken with peers outside the master:
build slaves (the slave and file queues), and operators' tools and monitors (the import and
control queues), and monitors (the status queue). Every message a peer sends is refused past
PEER_MAX_ITEMS CBOR items."""

from __future__ import annotations

from piwheels.codec import (
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
    Str,
    Text,
)
from piwheels.failures import MAX_WANTS, Diagnosis, Want
from piwheels.protocols.base import NO_DATA, PEER_MAX_ITEMS, Dialect, Protocol, request_reply
from piwheels.protocols.messages import (
    Ack,
    AddRequest,
    Chunk,
    Fetch,
    ImportRequest,
    InstalledRequest,
    PriorityRequest,
    RebuildRequest,
    RemoveRequest,
    RetryCauseRequest,
    RetryRequest,
    SkipRequest,
    YankRequest,
)
from piwheels.records.builds import BuildResult, Dependency, FileState, PackageVersion
from piwheels.records.hits import ClientRow, DailyHits, Download, Downloads, HitBatch, Popular
from piwheels.records.projects import Statistics
from piwheels.records.slaves import SlaveHello, SlaveStats
from piwheels.records.status import BuildEvent, CheckEvent, MasterStatus, SlaveStatus

# -- records more than one protocol carries ---------------------------------------------------

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
SLAVE_STATS = Record(
    [DateTime, Int, Int, Int, Int, Float, Float, Optional(Int), Optional(Int)],
    SlaveStats,
    required=7,  # the spec's; swap is ours, after them
)
PACKAGE_VERSION = Record([Str, Str], PackageVersion)
REMOVE = Record([Str, Str, Str], RemoveRequest)
ADD = Record([Str, OptStr, Str], AddRequest)
SKIP = Record([Str, OptStr, Str], SkipRequest)
YANK = Record([Str, Str, Bool], YankRequest)
RETRY = Record([Str, Str, OptStr], RetryRequest)
PRIORITY = Record([Str, OptStr, Bool], PriorityRequest)
RETRY_CAUSE = Record([Str, OptStr], RetryCauseRequest)
INSTALLED = Record([Str, OptStr], InstalledRequest)
MAX_BATCH = 5_000  # downloads or daily counts in one HITS: ~25,000 CBOR items
HIT_BATCH = Record(
    [
        Str,
        Int,
        Int,
        Int,
        Int,
        ListOf(Record([Str] * 10, ClientRow), max_items=MAX_BATCH),
        ListOf(Record([DateTime, Str, Str, Int], Download), max_items=MAX_BATCH),
        ListOf(Record([Str, Str, DateTime, Int], DailyHits), max_items=MAX_BATCH),
    ],
    HitBatch,
)


# -- the protocols ----------------------------------------------------------------------------

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
        "ACK": Record([Int, Str], Ack),
        "SLEEP": None,
        "DIE": None,
        "BUILD": PACKAGE_VERSION,
        "CONT": None,
        "SEND": Str,  # filename
        "DONE": None,
    },
    max_items=PEER_MAX_ITEMS,
)

# The Slave Driver sends SLEEP with whether the master is paused, which the spec's SLEEP does not
# say (the original's does: see original.py).
slave_dialect = Dialect("spec", slave_driver, outgoing={"SLEEP": lambda _paused: NO_DATA})

# The spec's CHUNK carries only the bytes; with several FETCHes in flight the master must know
# which one a chunk answers, so (as the original implementation does) it carries the offset too.
file_juggler = Protocol(
    "file juggler",
    recv={"HELLO": Int, "CHUNK": Record([Int, Bytes], Chunk)},
    send={"FETCH": Record([Int, Int], Fetch), "DONE": None},
    max_items=PEER_MAX_ITEMS,
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
        "IMPORT": Record(
            [Int, Str, Str, OptStr, Bool, Duration, Text, ListOf(FILE_STATE, max_items=100)],
            ImportRequest,
        ),
        "REMOVE": REMOVE,
        "RELEASE": PACKAGE_VERSION,  # publish a version's withheld wheels after all
        "REBUILD": Record([Str, OptStr], RebuildRequest),
        "SENT": None,
        "ADD": ADD,
        "SKIP": SKIP,
        "YANK": YANK,
        "RETRY": RETRY,
        "PRIORITY": PRIORITY,
        "RETRYCAUSE": RETRY_CAUSE,
        "INSTALLED": INSTALLED,
    },
    send={"ERROR": Reason, "SEND": Str, "DONE": None},
    max_items=PEER_MAX_ITEMS,
)

# piw-logger -> the Hit Counter (its --log-queue; the tool uses REQ): where the reading of a log
# (the sha256 of its first line) resumes, and a batch of what the log held, recorded with the
# log's cursor moved past it. A "stale" ERROR: the cursor is not where the batch starts (the
# batch was recorded already, its answer lost; or another reader reads the same log).
hit_counter = Protocol(
    "hit counter",
    **request_reply(
        {"CURSOR": (Str, Int), "HITS": (HIT_BATCH, None)},
        {"stale", "refused", "unavailable", "malformed", "failed"},
    ),
    max_items=PEER_MAX_ITEMS,
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

# The master -> every monitor (PUB/SUB on its --status-queue).
STATISTICS = Record(
    [
        *[Int] * 8,
        *[MapOf(Str, Int)] * 3,
        MapOf(Str, MapOf(Str, Int)),
        Int,
        Int,
        DateTime,
        Optional(Record([Int, Int], Downloads)),
        Optional(ListOf(Record([Str, Int], Popular), max_items=100)),
        Optional(Int),
    ],
    Statistics,
    # the downloads (#20) and the give-backs are ours and later: a monitor does without them
    required=15,
)
status = Protocol(
    "status",
    send={
        "MASTER": Record([Str, DateTime, Str], MasterStatus),
        "QUEUE": MapOf(Str, Int),  # abi -> versions waiting
        "STATS": STATISTICS,
        "SLAVE": Record(
            [
                Int,
                Str,
                Str,
                Str,
                Str,
                Optional(PACKAGE_VERSION),
                Optional(DateTime),
                DateTime,
                DateTime,
                Optional(SLAVE_STATS),
                Bool,
                Optional(Str),
            ],
            SlaveStatus,
            required=11,  # who the builder is came later: a monitor does without it
        ),
        "GONE": Int,  # slave_id
        "BUILD": Record([DateTime, Int, Str, Str, Str, Bool, Duration], BuildEvent),
        "CHECK": Record([DateTime, Int, Str, Str, Str, Int, Str], CheckEvent),
    },
)
