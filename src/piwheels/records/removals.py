"""What PyPI's removals and project statuses (PEP 792) come to: a project's status as the index
says it, and the files the farm withholds for them (migration 0018), on their way between
Cloud Gazer, the database and the File Juggler."""

from __future__ import annotations

from typing import NamedTuple

# PEP 792's statuses; a project without one is active
STATUSES = ("active", "archived", "quarantined", "deprecated")
MAX_STATUS_REASON = 1000  # characters: the width of packages.status_reason

# Why a file is withheld (files.withheld_for), in the order the schema keeps them
WITHHELD_REASONS = ("disagreement", "removed", "quarantined")


class ProjectStatus(NamedTuple):
    """A project's PEP 792 status, one of :data:`STATUSES`, and why (None: no reason given)."""

    status: str
    reason: str | None = None


class StatusUpdate(NamedTuple):
    """SETSTATUS: a status alone, for a project whose details the index withholds (PyPI's JSON
    API answers 404 for a quarantined project); *serial* is the one it was read at, if known."""

    package: str
    serial: int | None
    status: str
    reason: str


class MisplacedFile(NamedTuple):
    """A file whose place on disk differs from what PyPI's removals and statuses call for:
    to be taken out of the served tree (*withhold*), or put back."""

    package: str
    filename: str
    withhold: bool


class Withholding(NamedTuple):
    """PYPIHOLD's answer: the projects withheld or released as a whole since the last look
    (the index root and search must change), and files to move (at most a batch)."""

    projects: list[str]
    files: list[MisplacedFile]


class PlacedFiles(NamedTuple):
    """PLACED: the File Juggler moved these files out of the served tree (*moved_out*) or
    back."""

    filenames: list[str]
    moved_out: bool
