"""A project as the database records it: one JSON row, made without the database.

Cloud Gazer's fetch processes make the rows from what PyPI says, each version's skips worked
out for the farm's ABIs and its place in the project's order with ``packaging``; the master
passes them on to an Oracle without reading them
(:meth:`~piwheels.db.projects.ProjectRecords.set_project_rows`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from packaging.version import InvalidVersion, Version

from piwheels.abis import BuildABI, abi_skips
from piwheels.records.projects import ProjectRow


class ProjectUpdate(NamedTuple):
    """A project as PyPI describes it, ready to record."""

    package: str
    display_name: str
    serial: int
    summary: str
    description: str
    versions: Sequence[ProjectVersion]
    # PEP 792, as the index's simple page says it (None: it said nothing we could read, and the
    # status recorded stands); see migration 0018
    status: str | None = None
    status_reason: str | None = None


class ProjectVersion(NamedTuple):
    """A version as PyPI lists it, ready to record."""

    version: str
    released: datetime | None  # None: PyPI has no file of it, so no upload time
    requires_python: str | None
    has_sdist: bool
    yanked: bool
    skip: str  # the follower's reason never to build it ("" = build it)
    yanked_reason: str | None = None  # PyPI's, where it was yanked with one
    sdist_url: str = ""  # the sdist a build is made from, as the index lists it
    sdist_sha256: str = ""


def abis_key(abis: Iterable[BuildABI]) -> str:
    return " ".join(abi.abi_tag for abi in abis)


def version_orders(versions: Iterable[str]) -> dict[str, tuple[int | None, bool]]:
    """Each of a project's *versions* with its place in PEP 440 order (0 = the oldest; None
    for a version that is not PEP 440) and whether it is a pre-release, as the build queue's
    order needs them (see migrations/0010_queue_priority.sql). Worked out with ``packaging``:
    the schema only compares the places."""
    parsed: dict[str, Version | None] = {}
    for version in versions:
        try:
            parsed[version] = Version(version)
        except InvalidVersion:
            parsed[version] = None
    # equal versions spelt differently (1.0, 1.0.0) are told apart by their spelling
    valid = sorted((p, version) for version, p in parsed.items() if p is not None)
    place = {version: n for n, (_, version) in enumerate(valid)}
    return {
        version: (place.get(version), p is not None and p.is_prerelease)
        for version, p in parsed.items()
    }


def project_row(update: ProjectUpdate, abis: Sequence[BuildABI]) -> ProjectRow:
    """*update* as ``set_projects`` takes it, each version's skips worked out for *abis* and
    its place in the project's order with ``packaging`` (:func:`version_orders`)."""
    orders = version_orders(v.version for v in update.versions)
    row = {
        "package": update.package,
        "display_name": update.display_name,
        "serial": update.serial,
        "summary": update.summary,
        "description": update.description,
        "project_status": update.status,
        "status_reason": update.status_reason,
        "versions": [
            {
                "version": v.version,
                "released": v.released.isoformat() if v.released else None,
                "requires_python": v.requires_python,
                "has_sdist": v.has_sdist,
                "yanked": v.yanked,
                "yanked_reason": v.yanked_reason if v.yanked else None,
                "sdist_url": v.sdist_url,
                "sdist_sha256": v.sdist_sha256,
                "skip": v.skip,
                "version_order": orders[v.version][0],
                "prerelease": orders[v.version][1],
                "abi_skips": abi_skips(v.requires_python, abis),
            }
            for v in update.versions
        ],
    }
    return ProjectRow(update.package, abis_key(abis), json.dumps(row))


def current_row(row: ProjectRow, abis: Sequence[BuildABI]) -> str:
    """*row*'s JSON, its skips worked out again if the farm's ABIs changed since it was made."""
    if row.abis == abis_key(abis):
        return row.row
    try:
        data = json.loads(row.row)
        for version in data["versions"]:
            version["abi_skips"] = abi_skips(version.get("requires_python"), abis)
    except (ValueError, TypeError, KeyError, AttributeError):
        return row.row  # not a row at all: the database refuses it, and says so
    return json.dumps(data)
