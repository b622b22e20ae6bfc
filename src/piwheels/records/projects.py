"""What the web output is made from: plain records the master reads from its database.

The Scribe fills these and the renderers (:mod:`piwheels.web.index`, :mod:`piwheels.web.pages`)
turn them into files; neither side knows the other's internals. Every string here may come from
PyPI or a slave, so renderers escape all of it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from piwheels.records.builds import UNCHECKED, BuildState
from piwheels.records.hits import Downloads, Popular

# Projects with files per PUBLISHED answer (the database's and the Oracle protocol's bound): at
# PyPI's scale some 90 pages, each an index scan of the projects in name order.
PUBLISHED_PAGE = 10_000
# Saved page requests per SAVEPAGES or TAKEPAGES (a stopping Secretary may hold one for each of
# PyPI's projects): a tenth of what one message may list.
PAGE_REQUESTS_AT_ONCE = 10_000


class ProjectRow(NamedTuple):
    """A project as ``set_projects`` in the schema takes it: JSON made where PyPI's answer was
    read (Cloud Gazer's fetch processes), so the master only passes it on."""

    package: str
    abis: str  # the ABIs its skips were worked out for (abis_key); others mean doing it again
    row: str  # {package, display_name, serial, summary, description, versions: [...]}


class WheelFile(NamedTuple):
    filename: str
    filesize: int
    filehash: str  # SHA256 hex
    requires_python: str | None
    uploaded: datetime  # when the build was recorded: PEP 700's upload-time
    yanked: str | None  # None: not yanked; otherwise the reason ("" when PyPI gave none)
    metadata_hash: str | None  # SHA256 of <wheel>.metadata; None when there is none
    abi_tag: str  # the ABI of the build that made it
    apt_dependencies: tuple[str, ...]
    # shared libraries it links that no Debian package owned on its builder (by path), as the
    # original piwheels slaves report them
    unowned_libraries: tuple[str, ...] = ()
    provenance: bool = False  # whether its signed provenance is beside it (<wheel>.provenance.json)
    cross_check: str = UNCHECKED  # what other builders made of it (describe_cross_check)
    withheld: bool = False  # taken out of the index: its builders disagree (migration 0016)
    # why: "disagreement", "removed" (from PyPI), "quarantined" (on PyPI); see migration 0018
    withheld_for: tuple[str, ...] = ()


class WheelOrigin(NamedTuple):
    """What a published wheel's provenance says of its build (migration 0015): the sdist as the
    index listed it, and the builder (blank where unknown: an older build, a keyless one)."""

    filename: str
    filehash: str
    filesize: int
    package: str
    version: str
    abi_tag: str
    sdist_url: str
    sdist_sha256: str
    builder_key: str
    label: str
    os_name: str
    os_version: str
    py_version_tag: str
    platform_tag: str
    build_id: int
    built_at: datetime
    duration: timedelta
    cross_check: str = UNCHECKED  # describe_cross_check


class QueuePlace(NamedTuple):
    """Where a queued version stands in its ABI's queue (see migration 0010 for the order)."""

    tier: int  # 0 an operator's priority, 1 its project's newest release, 2 the backlog
    rank: int  # its place among its project's buildable versions (1 = the newest)
    ahead: int  # entries before it, at least
    ahead_at_most: int  # and at most: equal to ahead when they were counted one by one
    as_of: datetime


class AbiCell(NamedTuple):
    """One (version, ABI) square of the project page's table."""

    state: BuildState
    reason: str  # why skipped / what covers it; "" otherwise
    build_id: int | None  # the build attempt on this ABI, if any
    place: QueuePlace | None = None  # where it waits, when queued on this ABI


class BuildInfo(NamedTuple):
    build_id: int
    abi_tag: str
    status: bool
    built_at: datetime
    duration: timedelta
    built_by: int
    # a failed build's (migration 0012): see failures.Cause and failures.Outcome
    cause: str | None = None
    summary: str = ""  # one line, quoting its log
    needs: tuple[str, ...] = ()  # Debian packages ("a | b"), or the PyPI requirement waited for
    outcome: str = "built"  # built, failed, dep-wait or give-back
    retry_at: datetime | None = None  # a give-back's next try
    requeued: bool = False  # no longer stands: its need was met, or it was retried


class VersionInfo(NamedTuple):
    version: str
    released: datetime | None  # None: PyPI has no file of it, so no upload time
    yanked: bool
    skip: str  # why this version is never built ("" = it is); binary-only etc. included
    cells: dict[str, AbiCell]  # abi_tag -> state, in the project's ABI order
    builds: list[BuildInfo]
    files: list[WheelFile]


class ProjectData(NamedTuple):
    name: str  # canonical (PEP 503 normalized)
    display_name: str
    summary: str
    description: str
    abis: list[str]  # the farm's ABIs, lowest first
    versions: list[VersionInfo]  # newest first, by PEP 440's order
    downloads: Downloads = Downloads()
    # PEP 792, as PyPI's simple index says it: active, archived, quarantined or deprecated
    status: str = "active"
    status_reason: str = ""  # "" when PyPI gave none

    @property
    def files(self) -> list[WheelFile]:
        return [file for version in self.versions for file in version.files]


class SearchEntry(NamedTuple):
    name: str
    summary: str
    versions: int
    files: int


class Statistics(NamedTuple):
    """Big Brother's figures for the home page."""

    packages: int
    versions: int
    builds: int
    builds_succeeded: int
    builds_last_hour: int
    failures_last_hour: int
    files: int
    bytes: int
    queue: dict[str, int]  # abi_tag -> versions waiting
    queue_priority: dict[str, int]  # abi_tag -> of which put first by an operator (tier 0)
    queue_newest: dict[str, int]  # abi_tag -> of which projects' newest releases (tier 1)
    # abi_tag -> cause -> builds that failed for it in the last day (give-backs aside), most first
    failures_by_cause: dict[str, dict[str, int]]
    # the output disk's, which the master measures: 0 in the database's figures alone
    disk_free: int
    disk_total: int
    updated: datetime
    # the farm's wheels downloaded (migration 0017); None from a master older than that
    downloads: Downloads | None = Downloads()
    # the most downloaded projects of the last 30 days; None likewise
    popular: list[Popular] | None = []  # noqa: RUF012
    # the last hour's builds given back: neither built nor failed, but tried again later
    # (None from an older master)
    given_back_last_hour: int | None = None
