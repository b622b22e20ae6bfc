"""The master's own queues: between its main thread and its tasks, and among its tasks."""

from __future__ import annotations

from piwheels.abis import BuildABI
from piwheels.codec import (
    Bool,
    Bytes,
    Duration,
    Float,
    Int,
    ListOf,
    MapOf,
    Optional,
    Record,
    Str,
    Text,
)
from piwheels.protocols.base import FAILURE, Protocol, request_reply
from piwheels.protocols.messages import (
    BuildReport,
    Discard,
    Expect,
    FetchAnswer,
    FetchedProject,
    FetchEntry,
    FetchRequest,
    FetchResult,
    LogRecord,
    LostBuild,
    PageRequest,
    PagesWritten,
    Published,
    QueueQuery,
    RefusedProject,
    TaskFailure,
    Withhold,
)
from piwheels.protocols.wire import (
    ADD,
    BUILD_RESULT,
    FILE_STATE,
    HIT_BATCH,
    INSTALLED,
    PACKAGE_VERSION,
    PRIORITY,
    REMOVE,
    RETRY,
    RETRY_CAUSE,
    SKIP,
    STATISTICS,
    YANK,
)
from piwheels.records.builds import BuildOrigin, CrossCheck, CrossCheckReport, QueueSnapshot
from piwheels.records.projects import PUBLISHED_PAGE, ProjectRow
from piwheels.records.removals import MisplacedFile, PlacedFiles, StatusUpdate, Withholding

# The master -> every task (PUB/SUB: each message's first frame is its topic, every task's or
# one task's; see master_support/task.py: tell_tasks).
task_control = Protocol(
    "task control",
    recv={"PAUSE": None, "RESUME": None, "QUIT": None},
)

# Tasks -> the master's main thread: a task that cannot go on asks everything to stop.
master_control = Protocol(
    "master control", recv={"QUIT": None, "FAILED": Record([Str, Text], TaskFailure)}
)

QUEUE = Record([MapOf(Str, ListOf(PACKAGE_VERSION)), MapOf(Str, Int), Int], QueueSnapshot)
PAGE_REQUEST = Record([Str, Str], PageRequest)
BUILD_ORIGIN = Record([Str, Str, Str, Str, Str, Str], BuildOrigin)
CROSS_CHECK = Record([Int, Str, Str, Str, ListOf(Str)], CrossCheck)
CROSS_CHECK_REPORT = Record([Int, Str, Bool, MapOf(Str, Str)], CrossCheckReport)

# Clients -> Seraph -> an Oracle: {request: (its data, its answer)}. The projects of SETPROJECTS
# are made in Cloud Gazer's fetch processes and passed through, the database checking their JSON.
ORACLE_ERRORS = {
    "unavailable",  # the database went away: the next request reconnects
    "not-found",  # no such package or version: the asker's mistake
    "refused",  # the database would not do it (a constraint, a check)
    "malformed",  # the request (or its answer) was not understood
    "timeout",  # no answer in time: the asker gave up waiting
    "failed",  # anything else: our bug, logged
}
oracle = Protocol(
    "oracle",
    **request_reply(
        {
            "GETPKGS": (None, MapOf(Str, Int)),  # package -> serial
            "GETSERIAL": (None, Int),
            "SETSERIAL": (Int, None),
            "SETPROJECTS": (
                ListOf(Record([Str, Str, Text], ProjectRow), max_items=1000),
                ListOf(Record([Str, Text], RefusedProject)),
            ),
            "REMOVEPROJECT": (Str, None),
            "GETABIS": (None, ListOf(Record([Str, Int, Str], BuildABI))),  # lowest first
            "GETQUEUE": (Int, QUEUE),  # how many entries per ABI
            "GETHASHES": (ListOf(Str), MapOf(Str, Str)),  # filenames -> published SHA256
            "QUEUED": (Record([Str, Str, Str], QueueQuery), Bool),
            "LOGBUILD": (
                Record([Int, Str, Str, Str, BUILD_RESULT, Optional(BUILD_ORIGIN)], BuildReport),
                Int,
            ),
            "LOSTBUILD": (Record([Int, Str, Str, Str, Duration, Text], LostBuild), Int),
            "OPENCHECKS": (Int, ListOf(CROSS_CHECK)),  # at most this many
            "CHECKED": (CROSS_CHECK_REPORT, Str),  # the verdict as it now stands
            "WITHHOLD": (Int, ListOf(Str)),  # a build's files, taken out of the index
            "RELEASE": (PACKAGE_VERSION, ListOf(Str)),  # a version's withheld files, put back
            "REQUEUEDUE": (None, ListOf(Int)),  # give-backs whose time has come
            "GETSTATS": (None, STATISTICS),  # the database's figures (no disk)
            "SAVEPAGES": (ListOf(PAGE_REQUEST), None),  # the Secretary's backlog
            # the saved requests after one (see migration 0022)
            "TAKEPAGES": (PAGE_REQUEST, ListOf(PAGE_REQUEST)),
            "PUBLISHED": (  # the page after a project (see migration 0021)
                Str,
                ListOf(Record([Str, Float], Published), max_items=PUBLISHED_PAGE),
            ),
            "SLAVEIDS": (None, Int),  # the first of a block never given (0008_slave_ids)
            # Mr. Chase's repairs (see migrations/0003_operator_repairs.sql)
            "PKGEXISTS": (Str, Bool),
            "VEREXISTS": (PACKAGE_VERSION, Bool),
            "REMOVEVER": (REMOVE, ListOf(Str)),  # -> filenames to delete from disk
            "ADDBYHAND": (ADD, None),
            "SETSKIP": (SKIP, None),
            "SETYANKED": (YANK, None),
            "RETRY": (RETRY, Int),  # -> how many failed builds were forgotten
            "SETPRIORITY": (PRIORITY, None),
            "RETRYCAUSE": (RETRY_CAUSE, ListOf(Int)),  # -> builds requeued
            "DEBINSTALLED": (INSTALLED, ListOf(Int)),  # -> builds requeued
            # the Hit Counter's (see migrations/0017_downloads.sql)
            "LOGCURSOR": (Str, Int),  # a log -> where its reading resumes
            "LOGHITS": (HIT_BATCH, Bool),  # False: the log's cursor is elsewhere
            "RECOUNT": (None, Int),  # the last 30 days again -> projects moved in the queue
            # Cloud Gazer's, for PyPI's removals and statuses (migrations/0018_pypi_statuses.sql)
            "SETSTATUS": (Record([Str, Optional(Int), Str, Text], StatusUpdate), None),
            "PYPIHOLD": (  # the grace -> projects withheld or released whole, files to move
                Duration,
                Record([ListOf(Str), ListOf(Record([Str, Str, Bool], MisplacedFile))], Withholding),
            ),
            "PLACED": (Record([ListOf(Str), Bool], PlacedFiles), None),  # the files moved
        },
        ORACLE_ERRORS,
    ),
)

# An Oracle announces itself to Seraph, then answers one request at a time.
seraph_workers = Protocol("seraph workers", recv={"READY": None})

# Tasks -> the Secretary -> the Scribe: pages to (re)write. BOTH is a project's index page and
# project page; PROJECT the project page alone.
web = Protocol(
    "web",
    recv={
        "BOTH": Str,
        "PROJECT": Str,
        "HOME": STATISTICS,
        "SEARCH": None,
        "SITE": None,  # the pages of the whole site: the FAQ, the 404 page, the root, the sitemap
    },
)

# The Architect -> the Slave Driver: the head of each ABI's queue, its full length, and the
# newest build on record when they were read.
architect = Protocol("architect", send={"QUEUE": QUEUE})

# The Slave Driver -> the File Juggler: expect a file, then ask whether it arrived.
FILE_ERRORS = {
    "no-room",  # the output disk is (nearly) full: no use sending it again
    "refused",  # a name or transfer it will not take
    "failed",  # the transfer went wrong (size, hash, a stall): it may be tried again
    "malformed",  # the request (or its answer) was not understood
    "timeout",  # no answer in time: the asker gave up waiting
}
file_juggler_control = Protocol(
    "file juggler control",
    **request_reply(
        {
            # slave_id, package, file, and the slave's address and IP on its own queue: only a
            # file connection from that slave may send the file (see file_juggler.FileJuggler)
            "EXPECT": (Record([Int, Str, FILE_STATE, Bytes, Str, Str], Expect), None),
            "VERIFY": (Int, Text),  # slave_id -> where the file now is
            "FORGET": (Int, None),  # slave_id: the slave went away, drop its transfer
            # slave_id -> seconds since its transfer's last chunk (None: no transfer)
            "STALLED": (Int, Optional(Float)),
            "DISCARD": (Record([Str, ListOf(Str, max_items=100)], Discard), None),
            "WITHHOLD": (Record([Str, ListOf(Str, max_items=100)], Withhold), None),
            "RELEASE": (Record([Str, ListOf(Str, max_items=100)], Withhold), None),
            "FREE": (None, Int),  # free space on the output disk
        },
        FILE_ERRORS,
    ),
)

# The master's main thread -> the Slave Driver: the monitor's commands for slaves.
slave_commands = Protocol(
    "slave commands",
    recv={"SLEEP": Optional(Int), "WAKE": Optional(Int), "KILL": Optional(Int)},
)

# The Scribe -> its project writer (python -m piwheels.web.project_writer), on the child's stdin
# and stdout (pipes.py): the pages of a project to write (BOTH: with its simple index page),
# and, once each request is over, DONE; the child's log records come as LOG.
page_writer = Protocol(
    "page writer",
    recv={
        "DONE": Record([Str, Bool, Bool], PagesWritten),
        "LOG": Record([Int, Text], LogRecord),
    },
    send={"BOTH": Str, "PROJECT": Str},
)

# Cloud Gazer -> its fetch processes (python -m piwheels.master_support.fetch_workers), on the
# child's stdin and stdout (pipes.py): a chunk of projects to fetch, and what came of each.
BUILD_ABI = Record([Str, Int, Str], BuildABI)
FETCHED_PROJECT = Record([Str, Str, Int, Int, Record([Str, Str, Text], ProjectRow)], FetchedProject)
fetcher = Protocol(
    "fetcher",
    send={
        "FETCH": Record(
            [Int, ListOf(Record([Str, Optional(Int)], FetchEntry)), ListOf(BUILD_ABI)],
            FetchRequest,
        )
    },
    recv={
        "FETCHED": Record(
            [Int, ListOf(Record([Optional(FETCHED_PROJECT), Optional(FAILURE)], FetchResult))],
            FetchAnswer,
        )
    },
)
