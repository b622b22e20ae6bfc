"""What ``piw-audit`` checks: the output directory against the database, a project at a time.

The database is read with plain SELECTs on a read-only connection, a few hundred projects per
query, so the audit of a farm of PyPI's size neither holds memory for every file on record nor
keeps one transaction open for the hours that hashing terabytes can take.

The master keeps working while the audit runs, and some of its work is seen half done: a wheel is
renamed into ``simple/`` before its build is recorded, pages and logs are written a moment after
it, and a removal deletes the record before the file. So whatever is younger than the *grace*
period is taken to be in flight rather than wrong, and every file reported missing or damaged is
looked up again at the end: one no longer on record was removed meanwhile, not lost.
"""

from __future__ import annotations

import enum
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psycopg

from piwheels import provenance
from piwheels.master_support.config import INCOMING
from piwheels.web.layout import log_path

__all__ = ["Audit", "Kind", "Problem", "Scope"]

Conn = psycopg.Connection[Any]

# Projects per query: small enough that a query's rows fit in memory at any farm's size, large
# enough that a million projects take a few thousand queries, not a million.
CHUNK = 500
_BLOCK = 1 << 20
SIMPLE_PAGES = ("index.html", "index.json")
# what the master writes beside a recorded wheel: its METADATA (PEP 658), its signed provenance
BESIDE_WHEELS = (".metadata", provenance.SUFFIX)
PROJECT_PAGES = ("index.html", "json/index.json")
# What a killed writer leaves: the File Juggler's transfers (.name.xxxx.part) and the pages'
# atomic writes (.name.xxxx.tmp), both dotfiles beside their target.
TEMP_SUFFIXES = (".part", ".tmp")


class Kind(enum.StrEnum):
    """The kinds of problem, as they are printed."""

    MISSING_FILE = "missing-file"  # a recorded wheel is not on disk
    WRONG_SIZE = "wrong-size"  # ... is on disk with another size
    WRONG_HASH = "wrong-hash"  # ... with the recorded size but other bytes (--hashes)
    MISSING_METADATA = "missing-metadata"  # a recorded wheel without its .metadata (PEP 658)
    MISSING_PAGE = "missing-page"  # an index page or project page that should exist
    MISSING_LOG = "missing-log"  # a recorded build's log
    UNRECORDED_FILE = "unrecorded-file"  # in simple/, but not on record there
    STALE_TEMP = "stale-temp"  # a temporary file that no writer will finish


# The kinds whose file is on record: looked up again before they are reported (see above).
FILE_KINDS = frozenset({Kind.MISSING_FILE, Kind.WRONG_SIZE, Kind.WRONG_HASH, Kind.MISSING_METADATA})


@dataclass(frozen=True, order=True)
class Problem:
    path: Path
    kind: Kind
    package: str | None = None  # the project it concerns; None for the index root
    version: str | None = None  # for a damaged wheel: the version that must be built again
    filename: str | None = None  # for a recorded file: its name in the database
    detail: str = field(default="", compare=False)

    def line(self) -> str:
        return f"{self.kind:<16} {self.path}" + (f"  ({self.detail})" if self.detail else "")


@dataclass
class Scope:
    """What to audit: *packages*, or everything when None (then also the index root and the
    directories in ``simple/`` that no project on record owns)."""

    output: Path
    packages: Sequence[str] | None = None
    hashes: bool = False
    grace: float = 600.0


class Recorded(NamedTuple):
    package: str
    version: str
    filename: str
    size: int
    sha256: str
    built_at: float


class Build(NamedTuple):
    package: str
    build_id: int
    built_at: float


@dataclass
class Project:
    """One project's records, gathered from one chunk's queries."""

    files: list[Recorded] = field(default_factory=list)
    logs: list[Build] = field(default_factory=list)
    built: bool = False  # it has a build on record, so its project pages must exist
    newest: float = 0.0  # when its newest build was recorded (epoch seconds)


class Audit:
    """One audit: :meth:`run` returns the problems found; the counts say what was looked at."""

    def __init__(
        self, conn: Conn, scope: Scope, advance: Callable[[str, int], None] | None = None
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.simple = scope.output / "simple"
        # Told of each project begun (its name, 1) and, with hashes, of each file's bytes as
        # they are read (those of a file that cannot be read at once): the progress bar's units.
        self.advance = advance or (lambda _label, _amount: None)
        self.cutoff = time.time() - scope.grace  # anything newer is taken to be in flight
        self.projects_checked = 0
        self.files_checked = 0
        self.problems: list[Problem] = []

    # -- sizes, for the progress bar -----------------------------------------------------------

    def projects(self) -> list[str]:
        """The projects to audit: those with a build on record (or those asked for), and in a
        whole audit every directory in ``simple/`` besides."""
        if self.scope.packages is not None:
            return sorted(set(self.scope.packages))
        cur = self.conn.execute(
            "SELECT DISTINCT v.package FROM builds b JOIN versions v USING (version_id)"
        )
        names = {name for (name,) in cur}
        if self.simple.is_dir():
            with os.scandir(self.simple) as entries:
                names.update(e.name for e in entries if e.is_dir(follow_symlinks=False))
        return sorted(names)

    def bytes_to_hash(self, projects: Sequence[str]) -> int:
        total = 0
        for chunk in _chunks(projects):
            row = self.conn.execute(
                "SELECT coalesce(sum(f.filesize), 0)::bigint FROM files f "
                "JOIN builds b USING (build_id) JOIN versions v USING (version_id) "
                "WHERE v.package = ANY(%s)",
                (chunk,),
            ).fetchone()
            total += int(row[0]) if row else 0
        return total

    # -- the audit -----------------------------------------------------------------------------

    def run(self, projects: Sequence[str]) -> list[Problem]:
        for chunk in _chunks(projects):
            records = self._records(chunk)
            for name in chunk:
                self.advance(name, 1)
                self._check_project(name, records.get(name, Project()))
                self.projects_checked += 1
        if self.scope.packages is None:
            self._check_root(projects)
        self._forget_removed()
        return sorted(self.problems)

    def _records(self, chunk: list[str]) -> dict[str, Project]:
        found: dict[str, Project] = {}
        for row in self.conn.execute(
            "SELECT v.package, v.version, f.filename, f.filesize, f.filehash, "
            "extract(epoch FROM b.built_at)::float8 "
            "FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id) "
            # a withheld file is kept out of the served tree (migration 0016)
            "WHERE v.package = ANY(%s) AND NOT f.withheld",
            (chunk,),
        ):
            found.setdefault(row[0], Project()).files.append(Recorded(*row))
        # Every build's log is written with its project's pages, whatever its outcome; a build
        # recorded without output has none to write.
        for package, build_id, built_at, has_output in self.conn.execute(
            "SELECT v.package, b.build_id, extract(epoch FROM b.built_at)::float8, "
            "EXISTS (SELECT 1 FROM output o WHERE o.build_id = b.build_id) "
            "FROM builds b JOIN versions v USING (version_id) WHERE v.package = ANY(%s)",
            (chunk,),
        ):
            project = found.setdefault(package, Project())
            project.built = True
            project.newest = max(project.newest, built_at)
            if has_output:
                project.logs.append(Build(package, build_id, built_at))
        return found

    def _report(self, kind: Kind, path: Path, detail: str = "", **about: str | None) -> None:
        self.problems.append(Problem(path, kind, detail=detail, **about))

    def _check_project(self, name: str, project: Project) -> None:
        directory = self.simple / name
        entries = _listing(directory)
        recorded = {f.filename for f in project.files}
        for file in project.files:
            self._check_file(directory, file, entries)
        for entry_name, entry in entries.items():
            if entry_name in SIMPLE_PAGES and entry.is_file(follow_symlinks=False):
                continue
            if entry_name in recorded or any(
                entry_name.removesuffix(suffix) in recorded for suffix in BESIDE_WHEELS
            ):
                continue
            self._check_stray(Path(entry.path), entry, name)
        if project.newest > self.cutoff:
            return  # its pages and logs are being written now
        if project.files:
            for page in SIMPLE_PAGES:
                if page not in entries:
                    self._report(Kind.MISSING_PAGE, directory / page, package=name)
        if project.built:
            pages = self.scope.output / "project" / name
            for page in PROJECT_PAGES:
                if not (pages / page).is_file():
                    self._report(Kind.MISSING_PAGE, pages / page, package=name)
        for build in project.logs:
            path = self.scope.output / log_path(build.build_id)
            if not path.is_file():
                self._report(Kind.MISSING_LOG, path, f"build {build.build_id}", package=name)

    def _check_file(
        self, directory: Path, file: Recorded, entries: dict[str, os.DirEntry[str]]
    ) -> None:
        self.files_checked += 1
        path = directory / file.filename
        about = {"package": file.package, "version": file.version, "filename": file.filename}
        size = _size(entries.get(file.filename))
        if size is None:
            self._report(Kind.MISSING_FILE, path, **about)
            self._skip_hash(file)
            return
        if size != file.size:
            self._report(Kind.WRONG_SIZE, path, f"{size} bytes, {file.size} on record", **about)
            self._skip_hash(file)
        elif self.scope.hashes:
            try:
                digest = self._sha256(path, file.filename)
            except FileNotFoundError:  # removed since the listing: looked up again at the end
                self._report(Kind.MISSING_FILE, path, **about)
                return
            if digest != file.sha256:
                self._report(Kind.WRONG_HASH, path, f"sha256 {digest}, not as on record", **about)
        if f"{file.filename}.metadata" not in entries and file.built_at <= self.cutoff:
            self._report(
                Kind.MISSING_METADATA, path.with_name(f"{file.filename}.metadata"), **about
            )

    def _skip_hash(self, file: Recorded) -> None:
        if self.scope.hashes:
            self.advance(file.filename, file.size)

    def _sha256(self, path: Path, label: str) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while block := stream.read(_BLOCK):
                digest.update(block)
                self.advance(label, len(block))
        return digest.hexdigest()

    def _check_stray(self, path: Path, entry: os.DirEntry[str], package: str | None) -> None:
        """A file no record accounts for: a writer's temporary file, or one not on record."""
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return  # gone since the listing: a temporary file renamed into place
        if stat.st_mtime > self.cutoff:
            return  # being written, or about to be recorded
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIXES):
            age = _age(time.time() - stat.st_mtime)
            self._report(Kind.STALE_TEMP, path, f"last written {age} ago", package=package)
        else:
            self._report(Kind.UNRECORDED_FILE, path, package=package)

    def _check_root(self, projects: Sequence[str]) -> None:
        """The index root lists every project with a file; once there is one, it must exist.
        Besides it, only the projects' directories belong directly in ``simple/``."""
        entries = _listing(self.simple)
        any_file = self.conn.execute("SELECT EXISTS (SELECT 1 FROM files)").fetchone()
        if any_file and any_file[0]:
            for page in SIMPLE_PAGES:
                if page not in entries:
                    self._report(Kind.MISSING_PAGE, self.simple / page)
        names = set(projects)
        for entry_name, entry in entries.items():
            if entry_name in SIMPLE_PAGES or entry_name in names:
                continue
            self._check_stray(Path(entry.path), entry, None)
        # where the File Juggler writes files as they arrive: left there only by a kill
        for entry in _listing(self.scope.output / INCOMING).values():
            self._check_stray(Path(entry.path), entry, None)

    def _forget_removed(self) -> None:
        """Drop the damaged or missing files that are no longer on record: removed meanwhile."""
        names = sorted({p.filename for p in self.problems if p.kind in FILE_KINDS and p.filename})
        still: set[str] = set()
        for chunk in _chunks(names):
            cur = self.conn.execute("SELECT filename FROM files WHERE filename = ANY(%s)", (chunk,))
            still.update(name for (name,) in cur)
        self.problems = [
            p for p in self.problems if p.kind not in FILE_KINDS or p.filename in still
        ]


def _listing(directory: Path) -> dict[str, os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return {entry.name: entry for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _size(entry: os.DirEntry[str] | None) -> int | None:
    """The size of the file *entry*; None if it is none, or gone since the listing (then it is
    looked up again at the end: see the module's docstring)."""
    try:
        return entry.stat().st_size if entry is not None and entry.is_file() else None
    except FileNotFoundError:
        return None


def _age(seconds: float) -> str:
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])
