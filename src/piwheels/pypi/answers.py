"""What the index says, as plain records: the rest of piwheels reads these, never PyPI's JSON.

Names come in two forms throughout: as the index displays them and canonical (PEP 503), which is
what every lookup is keyed by. :func:`diff_serials` is what makes following PyPI cheap: comparing
serials says which projects changed without asking about any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import NamedTuple

from packaging.utils import InvalidName, canonicalize_name


class ProjectSerial(NamedTuple):
    """One project of the index's list: its name as displayed, its canonical name, its serial."""

    name: str
    canonical_name: str
    serial: int


class ProjectList(NamedTuple):
    """The whole list: the index's serial and every project, keyed by canonical name."""

    serial: int
    projects: dict[str, ProjectSerial]


class ProjectChanges(NamedTuple):
    """What differs from the serials a caller knows."""

    serial: int  # the index's, to record once every change below is
    changed: list[ProjectSerial]  # new or changed projects, lowest serial first
    removed: list[str]  # canonical names the index no longer lists, sorted


class VersionInfo(NamedTuple):
    """One release of a project.

    ``version`` is PyPI's string, untouched; ``valid`` says whether it parses as PEP 440 (PyPI
    still serves a few legacy versions that do not), so callers can skip the rest.
    ``released`` is the earliest upload among the release's files, None when it has no files.
    """

    version: str
    released: datetime | None
    requires_python: str | None
    has_sdist: bool
    yanked: bool
    yanked_reason: str | None
    valid: bool
    # the sdist pip would build from, as the index lists it ("" where there is none)
    sdist_url: str = ""
    sdist_sha256: str = ""


class ProjectInfo(NamedTuple):
    """One project's details from the JSON API; versions in the order PyPI listed them."""

    name: str
    canonical_name: str
    serial: int
    summary: str | None
    description: str | None
    description_content_type: str | None
    versions: list[VersionInfo]


class ChangelogEntry(NamedTuple):
    """One line of XML-RPC ``changelog_since_serial``."""

    name: str
    canonical_name: str
    version: str | None
    time: datetime
    action: str
    serial: int


def diff_serials(
    known: Mapping[str, int], projects: Mapping[str, ProjectSerial]
) -> tuple[list[ProjectSerial], list[str]]:
    """The projects whose serial differs from *known*'s, and *known*'s names no longer listed.

    Both are keyed by canonical name. A serial lower than the known one counts as a change too:
    serials only grow, so the record is wrong or the project was replaced, and a fetch fixes both.
    """
    changed = [entry for key, entry in projects.items() if known.get(key) != entry.serial]
    changed.sort(key=attrgetter("serial"))
    removed = sorted(known.keys() - projects.keys())
    return changed, removed


def canonical_name(name: str) -> str | None:
    """*name*'s canonical form, or None if it could not be a project's name."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        return None
