"""A build's result and its wheels: what BUILT and IMPORT carry, and the database records.

The wire carries plain CBOR arrays (see :mod:`piwheels.protocols`); these types are what the
arrays decode into, so that no code indexes a 10-element list by position.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import NamedTuple

from piwheels.failures import Diagnosis


class PackageVersion(NamedTuple):
    """A version of a package: what a slave is asked to build."""

    package: str
    version: str


class Dependency(NamedTuple):
    """Something a wheel needs at run time, and the tool that installs it (``pip`` or ``apt``)."""

    tool: str
    package: str


class FileState(NamedTuple):
    """One wheel as a slave (or importer) reports it in BUILT / IMPORT."""

    filename: str
    filesize: int
    filehash: str  # SHA256, lower-case hex
    package_tag: str
    package_version_tag: str
    py_version_tag: str
    abi_tag: str
    platform_tag: str
    dependencies: frozenset[Dependency]
    # Not in the original protocol: appended last so the first nine fields keep the spec's order.
    requires_python: str | None


class BuildOrigin(NamedTuple):
    """Who built a build, as its signed provenance names it (migration 0015)."""

    builder_key: str  # the fingerprint of its builder key; "" where it has none
    label: str
    os_name: str
    os_version: str
    py_version_tag: str
    platform_tag: str


class CrossCheck(NamedTuple):
    """A build waiting for another builder to build it again (migration 0016)."""

    build_id: int
    package: str
    version: str
    abi_tag: str
    excluded: list[str]  # the keys that may not check it: its builder's, past checkers'


UNCHECKED = "not checked"


def describe_cross_check(verdict: str | None, checks_built: int) -> str:
    """A cross-check's verdict (migration 0016) for people, with how many builders took part;
    *checks_built* counts the checkers that built it."""
    if verdict is None:
        return UNCHECKED
    if verdict == "agreed":
        return (
            "built identically by 2 builders"
            if checks_built <= 1
            else f"built identically by 2 of {checks_built + 1} builders"
        )
    return {
        "pending": "a check by another builder is pending",
        "disagreed": "disagreement: another builder made other wheels",
        "unreproducible": "not reproducible: each builder made other wheels",
        "uncheckable": "not checked: other builders could not build it",
    }.get(verdict, verdict)


class CrossCheckReport(NamedTuple):
    """What a checker made of a build it was given to check."""

    build_id: int
    checker_key: str
    built: bool
    files: dict[str, str]  # filename -> sha256


class BuildResult(NamedTuple):
    """The outcome of one build attempt, as carried by BUILT."""

    status: bool
    duration: timedelta
    output: str
    files: list[FileState]
    # Not in the spec: a failed build's cause as the slave read it, with the Debian packages of
    # its own release that provide what the build lacked. Left off by slaves that do not
    # classify (the original piwheels'), whose logs the master classifies alone.
    diagnosis: Diagnosis | None = None


class BuildState(enum.StrEnum):
    """Where one (version, ABI) stands; the project pages show these."""

    PENDING = "pending"
    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"
    SKIPPED = "skipped"
    COVERED = "covered"  # an earlier none/abi3 wheel serves this ABI
    YANKED = "yanked"  # yanked on PyPI: never built (builds from before the yank stay)
    DEP_WAIT = "dep-wait"  # failed for want of something that can arrive: built again then
    GIVE_BACK = "give-back"  # failed for a passing cause: built again after a delay


class QueueSnapshot(NamedTuple):
    """The head of each ABI's queue and each queue's full length."""

    heads: dict[str, list[PackageVersion]]
    lengths: dict[str, int]
    # the newest build on record when the heads were read: they know of it and every older one
    # (the Slave Driver so tells a build requeued since it was recorded from a stale picture)
    last_build: int = 0
