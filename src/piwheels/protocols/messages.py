"""The data of the messages that no other layer shares: each decodes into one of these, so no
handler takes a position in a list for a field. Records that travel further (a build's result,
a slave's HELLO, the status queue's) are in :mod:`piwheels.records`."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from piwheels.abis import BuildABI
from piwheels.protocols.base import Failure
from piwheels.records.builds import BuildOrigin, BuildResult, FileState
from piwheels.records.projects import ProjectRow

# -- the slaves' queues ---------------------------------------------------------------------------


class Ack(NamedTuple):
    """ACK: the id the master gives a slave, and the index its builds download from."""

    slave_id: int
    pypi_url: str


class Fetch(NamedTuple):
    """FETCH: the part of a file the File Juggler wants next."""

    offset: int
    length: int


class Chunk(NamedTuple):
    """CHUNK: a part of a file, and where it goes."""

    offset: int
    data: bytes


# -- the import queue (Mr. Chase) and the Oracles' repairs ---------------------------------------


class ImportRequest(NamedTuple):
    """IMPORT: a build made elsewhere (piw-import), with its files."""

    slave_id: int
    package: str
    version: str
    abi_tag: str | None  # None: the files' own ABI
    status: bool
    duration: timedelta
    output: str
    files: list[FileState]


class RemoveRequest(NamedTuple):
    """REMOVE / REMOVEVER: a version to remove, and why never to build it again ("": rebuild)."""

    package: str
    version: str
    skip: str


class RebuildRequest(NamedTuple):
    """REBUILD: pages to write again: HOME, SEARCH, SITE, PROJECT or BOTH (of one package or
    all)."""

    part: str
    package: str | None


class AddRequest(NamedTuple):
    """ADD / ADDBYHAND: a package (version None) or a version recorded by hand."""

    package: str
    version: str | None
    skip: str


class SkipRequest(NamedTuple):
    """SKIP / SETSKIP: why never to build a package (version None) or version ("": build it)."""

    package: str
    version: str | None
    reason: str


class YankRequest(NamedTuple):
    """YANK / SETYANKED."""

    package: str
    version: str
    yanked: bool


class RetryRequest(NamedTuple):
    """RETRY: a version's failed builds forgotten, on one ABI (or every ABI: None)."""

    package: str
    version: str
    abi_tag: str | None


class PriorityRequest(NamedTuple):
    """PRIORITY / SETPRIORITY: a version (or a package's every version: None) to the front."""

    package: str
    version: str | None
    wanted: bool


class RetryCauseRequest(NamedTuple):
    """RETRYCAUSE: every standing failure of a cause queued again, on one ABI or all."""

    cause: str
    abi_tag: str | None


class InstalledRequest(NamedTuple):
    """INSTALLED / DEBINSTALLED: a Debian package now on the builders of one ABI (or all)."""

    debian_package: str
    abi_tag: str | None


# -- between the master's tasks -------------------------------------------------------------------


class TaskFailure(NamedTuple):
    """FAILED: a task that cannot go on, and why (the master then stops)."""

    task: str
    reason: str


class QueueQuery(NamedTuple):
    """QUEUED: whether a version still awaits a build on an ABI."""

    package: str
    version: str
    abi_tag: str


class BuildReport(NamedTuple):
    """LOGBUILD: a build to record."""

    slave_id: int
    package: str
    version: str
    abi_tag: str
    result: BuildResult
    origin: BuildOrigin | None = None  # who built it, where that is known


class LostBuild(NamedTuple):
    """LOSTBUILD: a build whose slave went away, to record as given back."""

    slave_id: int
    package: str
    version: str
    abi_tag: str
    duration: timedelta
    reason: str


class PageRequest(NamedTuple):
    """A page the Secretary holds for the Scribe: its kind (a web message) and package."""

    kind: str
    package: str


class RefusedProject(NamedTuple):
    """SETPROJECTS' answer: a project the database would not record, and why."""

    package: str
    why: str


class Published(NamedTuple):
    """PUBLISHED's answer: a project with files, and when its newest was recorded."""

    package: str
    when: float  # seconds since the epoch


class Expect(NamedTuple):
    """EXPECT: a file the File Juggler is to take from one slave's file connection only."""

    slave_id: int
    package: str
    file: FileState
    slave_address: bytes  # its routing id on the slave queue
    slave_peer: str  # its IP address
    slave_key: str  # its builder key, which its file connection must present ("" for none)


class Withhold(NamedTuple):
    """WITHHOLD (RELEASE): a build's files to move out of the served tree (back into it)."""

    package: str
    filenames: list[str]


class Discard(NamedTuple):
    """DISCARD: verified files of a build that was not recorded, to delete."""

    package: str
    filenames: list[str]


# -- the Scribe's project writer (a child process) ------------------------------------------------


class PagesWritten(NamedTuple):
    """DONE: a request is over, whatever came of it."""

    package: str
    new: bool  # the project has just entered the index: the index root is to be rewritten
    retry: bool  # the database could not be read: ask again once it may be back


class LogRecord(NamedTuple):
    """LOG: a record of the child's log, which the Scribe logs as its own."""

    level: int
    message: str


# -- Cloud Gazer's fetch processes (children) -----------------------------------------------------


class FetchEntry(NamedTuple):
    """A project to fetch, and the serial PyPI listed it with (None: whatever it has now)."""

    name: str
    serial: int | None


class FetchRequest(NamedTuple):
    """FETCH: a chunk of projects, their versions' skips worked out for the farm's ABIs."""

    number: int
    entries: list[FetchEntry]
    abis: list[BuildABI]


class FetchedProject(NamedTuple):
    """A project as PyPI describes it now, ready for the database."""

    name: str  # as PyPI displays it
    canonical_name: str
    serial: int
    versions: int  # how many (for the log)
    row: ProjectRow


class FetchResult(NamedTuple):
    """What came of one project: its row, or PyPI's error, or neither (PyPI no longer has
    it)."""

    project: FetchedProject | None
    failure: Failure | None  # kind "not-found" or "failed"


class FetchAnswer(NamedTuple):
    """FETCHED: a chunk done, a result for each of its projects in order."""

    number: int
    results: list[FetchResult]
