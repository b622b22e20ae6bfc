"""What the Slave Driver knows about each slave, and how it judges what a slave reports."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from piwheels.builder_keys import fingerprint
from piwheels.codec import describe_value
from piwheels.protocols import Dialect, wire
from piwheels.protocols.original import UNOWNED_LIBRARY
from piwheels.records.builds import BuildOrigin, BuildResult, FileState, PackageVersion
from piwheels.records.slaves import SlaveHello, SlaveState, SlaveStats
from piwheels.records.status import SlaveStatus

BuildKey = tuple[str, str, str]  # package, version, abi_tag
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_WHEEL_SIZE = 4 << 30  # PyPI's own limit is far lower; this only catches nonsense
# A wheel's name must fit a file name (255 bytes) with what the master adds to it: the File
# Juggler's ".NAME.1234abcd.part" while it arrives and the index's "NAME.metadata".
MAX_FILENAME = 255 - len("..12345678.part")
# A name with more dots than this is refused before its tags are expanded: the tags a wheel's
# name stands for are the product of its three sets of dot-separated parts, which packaging
# builds in full (with 20 dots, a few hundred at most; real wheels have fewer than 10 dots).
MAX_DOTS = 20
DEPENDENCY_TOOLS = frozenset({"apt", "pip", UNOWNED_LIBRARY})
# The widths of the files and dependencies tables' columns: a file the database cannot record
# must be refused before it is fetched, not after it is on disk.
COLUMN_WIDTHS = {
    "package_tag": 200,
    "package_version_tag": 200,
    "py_version_tag": 100,
    "abi_tag": 100,
    "platform_tag": 100,
    "requires_python": 500,
}
MAX_DEPENDENCY_NAME = 255


@dataclass(frozen=True)
class Connection:
    """How a message reached the Slave Driver: from which IP address ("" where there is none),
    with which builder key ("" on a plain queue), in which dialect."""

    peer: str = ""
    key: str = ""
    dialect: Dialect = wire.slave_dialect


@dataclass
class SlaveRecord:
    slave_id: int
    address: bytes  # the number of the queue it is on (one byte), then its routing id there
    hello: SlaveHello
    peer: str = ""  # its IP address, where it has one
    dialect: Dialect = wire.slave_dialect  # how it speaks, for the whole of its session
    key: str = ""  # its builder key (Z85), if it came on the secure queue
    builder: str = ""  # that key as the status queue names it (see SlaveStatus.builder)
    state: SlaveState = SlaveState.HELLO
    first_seen: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    last_reply: str = "ACK"
    stats: SlaveStats | None = None
    build: BuildKey | None = None
    build_started: float | None = None
    result: BuildResult | None = None
    to_send: list[FileState] = field(default_factory=list)
    sending: FileState | None = None
    fetched: list[str] = field(default_factory=list)  # files of this build verified on disk
    attempts: int = 0
    waiting: bool = False  # for the database or the File Juggler, before it can be answered
    recording: bool = False  # its build's result is being recorded: no longer its to lose
    check: int | None = None  # the build it builds again as a cross-check, if it does
    checking: bool = False  # whether its silent transfer has stalled (see expire_slaves)
    sleep_requested: bool = False
    kill_requested: bool = False

    def __str__(self) -> str:
        return f"slave {self.slave_id} ({self.hello.label})"

    @property
    def routing_id(self) -> bytes:
        return self.address[1:]

    @property
    def label(self) -> str:
        return self.hello.label

    @property
    def abi_tag(self) -> str:
        return self.hello.abi_tag

    def status(self) -> SlaveStatus:
        """This slave as the status queue describes it."""
        now, wall = time.monotonic(), datetime.now(UTC)

        def when(moment: float) -> datetime:
            return wall - timedelta(seconds=now - moment)

        return SlaveStatus(
            slave_id=self.slave_id,
            label=self.hello.label,
            abi_tag=self.hello.abi_tag,
            platform_tag=self.hello.platform_tag,
            state=str(self.state),
            build=PackageVersion(*self.build[:2]) if self.build else None,
            build_started=when(self.build_started) if self.build_started is not None else None,
            first_seen=when(self.first_seen),
            last_seen=when(self.last_seen),
            stats=self.stats,
            sleep_requested=self.sleep_requested,
            builder=self.builder,
        )

    def origin(self) -> BuildOrigin:
        """Who built this slave's builds: what their provenance names."""
        hello = self.hello
        return BuildOrigin(
            builder_key=fingerprint(self.key.encode("ascii")) if self.key else "",
            label=hello.label,
            os_name=hello.os_name,
            os_version=hello.os_version,
            py_version_tag=hello.py_version_tag,
            platform_tag=hello.platform_tag,
        )

    def same_machine(self, other: SlaveRecord) -> bool:
        """Whether *other* is this slave on another connection (as after a lost one)."""
        return (self.hello.label, self.peer, self.abi_tag) == (
            other.hello.label,
            other.peer,
            other.abi_tag,
        )

    def start_build(self, build: BuildKey) -> None:
        self.state, self.build, self.build_started = SlaveState.BUILDING, build, time.monotonic()

    def end_build(self) -> None:
        self.state = SlaveState.IDLE
        self.build = self.build_started = self.result = self.sending = None
        self.recording = False
        self.check = None
        self.to_send = []
        self.fetched = []
        self.attempts = 0

    def plan_transfers(self, published: dict[str, str]) -> tuple[BuildResult, list[FileState]]:
        """Decide which files to fetch, given the hashes of those already published.

        A published file is immutable: pip and lock files pin its hash. A file with the same
        name and bytes needs no transfer; one with the same name and different bytes is refused
        (logged in the build's output), the published one stays, and the build counts as
        failed: what it made cannot be published.
        """
        assert self.result is not None
        notes = []
        to_send = []
        for file in self.result.files:
            if file.filename not in published:
                to_send.append(file)
            elif published[file.filename] != file.filehash:
                notes.append(
                    f"piwheels: refused {file.filename}: a file of that name with different "
                    "bytes is already published, and published files never change"
                )
        output = self.result.output + "".join(f"\n{note}" for note in notes)
        if notes:
            to_send = []
            self.result = self.result._replace(status=False, output=output, files=[])
        else:
            self.result = self.result._replace(output=output)
        self.to_send = to_send
        return self.result, to_send


def check_files(package: str, version: str, result: BuildResult) -> tuple[BuildResult, list[str]]:
    """Keep only the files that are plausible wheels of *package* *version*.

    Returns the result with refused files removed (and the refusals noted in its output; a
    success left with no files becomes a failure) and the refusals, for the log. A failed
    build has no files: any it lists are refused.
    """
    refusals = []
    kept = []
    seen = set()
    for file in result.files:
        problem = file_problem(package, version, file) if result.status else "the build failed"
        if problem is None and file.filename in seen:
            problem = "it is listed twice"
        if problem is None:
            kept.append(file)
            seen.add(file.filename)
        else:
            name = describe_value(file.filename)
            refusals.append(f"refused file {name} of {package} {version}: {problem}")
    if not refusals:
        return result, []
    output = result.output + "".join(f"\npiwheels: {refusal}" for refusal in refusals)
    status = result.status and bool(kept)
    return result._replace(status=status, output=output, files=kept), refusals


def file_problem(package: str, version: str, file: FileState) -> str | None:
    """Why *file* cannot be a wheel of *package* *version* as reported, or None."""
    name = file.filename
    if "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        return "it holds a path"
    if len(name.encode()) > MAX_FILENAME:
        return f"its name is longer than {MAX_FILENAME} bytes"
    if name.count(".") > MAX_DOTS:
        return f"more than {MAX_DOTS} dots in its name"
    try:
        wheel_name, wheel_version, _, tags = parse_wheel_filename(name)
    except InvalidWheelFilename as exc:
        return f"not a wheel filename ({describe_value(str(exc))})"
    if wheel_name != canonicalize_name(package):
        return f"it is a wheel of {wheel_name}, not {package}"
    if canonicalize_version(wheel_version) != canonicalize_version(version):
        return f"it is a wheel of version {wheel_version}, not {version}"
    if not SHA256_HEX.match(file.filehash):
        return "its SHA256 is not 64 lower-case hex digits"
    if not 0 < file.filesize <= MAX_WHEEL_SIZE:
        return f"implausible size {describe_value(file.filesize)}"
    # The name's tags are the product of its three sets of parts, and so are the reported
    # ones: two products are equal when their factors are, which is linear to compare.
    if (
        {t.interpreter for t in tags} != set(file.py_version_tag.split("."))
        or {t.abi for t in tags} != set(file.abi_tag.split("."))
        or {t.platform for t in tags} != set(file.platform_tag.split("."))
    ):
        return "its reported tags do not match its filename"
    return _record_problem(file)


def _record_problem(file: FileState) -> str | None:
    """Why the database could not record *file* as reported, or None."""
    for column, width in COLUMN_WIDTHS.items():
        value = getattr(file, column)
        if value is not None and len(value) > width:
            return f"its {column} is longer than {width} characters"
    for dependency in file.dependencies:
        if dependency.tool not in DEPENDENCY_TOOLS:
            tool = describe_value(dependency.tool)
            return f"a dependency's tool is {tool}, not apt, pip or library"
        if not 0 < len(dependency.package) <= MAX_DEPENDENCY_NAME:
            return f"a dependency's name {describe_value(dependency.package)} is implausible"
    return None
