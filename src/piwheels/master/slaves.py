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

from piwheels.states import BuildResult, FileState, SlaveHello, SlaveState, SlaveStats

BuildKey = tuple[str, str, str]  # package, version, abi_tag
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_WHEEL_SIZE = 4 << 30  # PyPI's own limit is far lower; this only catches nonsense


@dataclass
class SlaveRecord:
    slave_id: int
    address: bytes
    hello: SlaveHello
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
    attempts: int = 0
    waiting: bool = False  # for the database or the File Juggler, before it can be answered
    sleep_requested: bool = False
    kill_requested: bool = False

    def __str__(self) -> str:
        return f"slave {self.slave_id} ({self.hello.label})"

    @property
    def label(self) -> str:
        return self.hello.label

    @property
    def abi_tag(self) -> str:
        return self.hello.abi_tag

    def status(self) -> tuple[object, ...]:
        """This slave as the status queue describes it (protocols.SLAVE_STATUS)."""
        now, wall = time.monotonic(), datetime.now(UTC)

        def when(moment: float) -> datetime:
            return wall - timedelta(seconds=now - moment)

        return (
            self.slave_id,
            self.hello.label,
            self.hello.abi_tag,
            self.hello.platform_tag,
            str(self.state),
            self.build[:2] if self.build else None,
            when(self.build_started) if self.build_started is not None else None,
            when(self.first_seen),
            when(self.last_seen),
            self.stats,
            self.sleep_requested,
        )

    def start_build(self, build: BuildKey) -> None:
        self.state, self.build, self.build_started = SlaveState.BUILDING, build, time.monotonic()

    def end_build(self) -> None:
        self.state = SlaveState.IDLE
        self.build = self.build_started = self.result = self.sending = None
        self.to_send = []
        self.attempts = 0

    def plan_transfers(self, published: dict[str, str]) -> tuple[BuildResult, list[FileState]]:
        """Decide which files to fetch, given the hashes of those already published.

        A published file is immutable: pip and lock files pin its hash. A file with the same
        name and bytes needs no transfer; one with the same name and different bytes is refused
        (logged in the build's output) and the published one stays.
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
        self.to_send = to_send
        return self.result._replace(output=output), to_send


def check_files(package: str, version: str, result: BuildResult) -> tuple[BuildResult, list[str]]:
    """Keep only the files that are plausible wheels of *package* *version*.

    Returns the result with refused files removed (and the refusals noted in its output; a
    success left with no files becomes a failure) and the refusals, for the log.
    """
    refusals = []
    kept = []
    seen = set()
    for file in result.files:
        problem = file_problem(package, version, file)
        if problem is None and file.filename in seen:
            problem = "it is listed twice"
        if problem is None:
            kept.append(file)
            seen.add(file.filename)
        else:
            refusals.append(f"refused file {file.filename!r} of {package} {version}: {problem}")
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
    try:
        wheel_name, wheel_version, _, tags = parse_wheel_filename(name)
    except InvalidWheelFilename as exc:
        return f"not a wheel filename ({exc})"
    if wheel_name != canonicalize_name(package):
        return f"it is a wheel of {wheel_name}, not {package}"
    if canonicalize_version(wheel_version) != canonicalize_version(version):
        return f"it is a wheel of version {wheel_version}, not {version}"
    if not SHA256_HEX.match(file.filehash):
        return "its SHA256 is not 64 lower-case hex digits"
    if not 0 < file.filesize <= MAX_WHEEL_SIZE:
        return f"implausible size {file.filesize}"
    if {(t.interpreter, t.abi, t.platform) for t in tags} != {
        (i, a, p)
        for i in file.py_version_tag.split(".")
        for a in file.abi_tag.split(".")
        for p in file.platform_tag.split(".")
    }:
        return "its reported tags do not match its filename"
    return None
