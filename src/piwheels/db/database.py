"""The master's access to PostgreSQL: one method per question or change, one transaction each.

Reads are plain SELECTs; every write calls one of the schema's SECURITY DEFINER functions,
which is all the master's role may do (see migrations/0001_create.sql).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from packaging.version import InvalidVersion, Version
from psycopg.types.json import Jsonb

from piwheels.abis import BuildABI, abi_skips, covers_from, excluded_by_requires_python
from piwheels.db import web_queries
from piwheels.db.migrate import check_version
from piwheels.failures import (
    Cause,
    Diagnosis,
    Outcome,
    diagnose,
    outcome_of,
    parse_wants,
    requirements_met,
    summary_line,
)
from piwheels.records.builds import BuildResult, PackageVersion, QueueSnapshot
from piwheels.records.projects import ProjectData, ProjectRow, SearchEntry, Statistics

log = logging.getLogger(__name__)


class ProjectUpdate(NamedTuple):
    """A project as PyPI describes it, ready to record."""

    package: str
    display_name: str
    serial: int
    summary: str
    description: str
    versions: Sequence[ProjectVersion]


class ProjectVersion(NamedTuple):
    """A version as PyPI lists it, ready to record."""

    version: str
    released: datetime | None  # None: PyPI has no file of it, so no upload time
    requires_python: str | None
    has_sdist: bool
    yanked: bool
    skip: str  # the follower's reason never to build it ("" = build it)


def file_rows(result: BuildResult) -> list[dict[str, Any]]:
    """*result*'s files as log_build() in the schema takes them."""
    return [
        {
            "filename": f.filename,
            "filesize": f.filesize,
            "filehash": f.filehash,
            "package_tag": f.package_tag,
            "package_version_tag": f.package_version_tag,
            "py_version_tag": f.py_version_tag,
            "abi_tag": f.abi_tag,
            "platform_tag": f.platform_tag,
            "requires_python": f.requires_python,
            "dependencies": sorted([d.tool, d.package] for d in f.dependencies),
        }
        for f in result.files
    ]


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
        "versions": [
            {
                "version": v.version,
                "released": v.released.isoformat() if v.released else None,
                "requires_python": v.requires_python,
                "has_sdist": v.has_sdist,
                "yanked": v.yanked,
                "skip": v.skip,
                "version_order": orders[v.version][0],
                "prerelease": orders[v.version][1],
                "abi_skips": abi_skips(v.requires_python, abis),
            }
            for v in update.versions
        ],
    }
    return ProjectRow(update.package, abis_key(abis), json.dumps(row))


def _current_row(row: ProjectRow, abis: Sequence[BuildABI]) -> str:
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


class GiveBack(NamedTuple):
    """How a build that failed for a passing cause goes back to the queue (migration 0012)."""

    tries: int = 3  # attempts in all, the last of which is failed if it fails the same way
    delay: timedelta = timedelta(minutes=10)  # before the second; doubled before each next


class Database:
    """A connection to the piwheels database, reopened after the server restarts."""

    def __init__(
        self, dsn: str, *, check_schema: bool = True, give_back: GiveBack | None = None
    ) -> None:
        self.dsn = dsn
        self.give_back = give_back or GiveBack()
        self._check_schema = check_schema
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            if self._check_schema:
                check_version(self._conn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- following PyPI ------------------------------------------------------------------------

    def get_pypi_serial(self) -> int:
        row = self.conn.execute("SELECT pypi_serial FROM configuration WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def set_pypi_serial(self, serial: int) -> None:
        self.conn.execute("SELECT set_pypi_serial(%s)", (serial,))

    def get_package_serials(self) -> dict[str, int]:
        """Every package's last seen PyPI serial (removed packages as -1, to notice a return)."""
        cur = self.conn.execute(
            "SELECT package, CASE WHEN removed THEN -1 ELSE serial END FROM packages"
        )
        return dict(cur.fetchall())

    def set_project(
        self,
        package: str,
        display_name: str,
        serial: int,
        summary: str,
        description: str,
        versions: Sequence[ProjectVersion],
    ) -> None:
        """Record one project; a project the database refuses raises its error."""
        update = ProjectUpdate(package, display_name, serial, summary, description, versions)
        self._record_rows([project_row(update, self.get_build_abis()).row])
        self.requeue_met_dep_waits([package])

    def set_projects(self, updates: Sequence[ProjectUpdate]) -> list[tuple[str, str]]:
        """Record several projects in one transaction; see :meth:`set_project_rows`."""
        abis = self.get_build_abis()
        return self._set_rows([project_row(update, abis) for update in updates], abis)

    def set_project_rows(self, rows: Sequence[ProjectRow]) -> list[tuple[str, str]]:
        """Record several projects in one transaction, returning those the database refused
        as (package, why).

        One call records the whole batch (one commit, each statement once for all). If the
        database refuses it, each project is recorded alone under a savepoint, so one bad
        project (say, a version too long for its column) costs only itself."""
        return self._set_rows(rows, self.get_build_abis())

    def _set_rows(
        self, rows: Sequence[ProjectRow], abis: Sequence[BuildABI]
    ) -> list[tuple[str, str]]:
        texts = [_current_row(row, abis) for row in rows]
        refused = []
        with self.conn.transaction():
            try:
                with self.conn.transaction():
                    self._record_rows(texts)
            except psycopg.OperationalError:
                raise  # the connection is gone: nothing of the batch is recorded
            except psycopg.Error:
                # one by one, each under a savepoint: a bad project costs only itself
                for row, text in zip(rows, texts, strict=True):
                    try:
                        with self.conn.transaction():
                            self._record_rows([text])
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as exc:
                        refused.append((row.package, exc.diag.message_primary or str(exc)))
        # in a transaction of its own, once the projects are committed
        self._requeue_met_dep_waits_of(rows)
        return refused

    def _requeue_met_dep_waits_of(self, rows: Sequence[ProjectRow]) -> None:
        # The projects are recorded whatever becomes of this: a failure here must not make
        # Cloud Gazer record them again (and fail again) in a loop.
        try:
            self.requeue_met_dep_waits([row.package for row in rows])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            log.error("cannot requeue the builds waiting for these projects: %s", exc)

    def requeue_met_dep_waits(self, projects: Sequence[str]) -> list[int]:
        """Requeue the builds waiting (dep-wait) for a release of one of *projects* that a
        release now on record satisfies; returns them. The requirement is checked with
        ``packaging``, against releases with files on PyPI that are neither yanked nor gone."""
        conn = self.conn
        waits = conn.execute(
            "SELECT build_id, waits_for, wants FROM builds WHERE outcome = 'dep-wait' "
            "AND requeued_at IS NULL AND waits_for = ANY(%s)",
            (list(projects),),
        ).fetchall()
        if not waits:
            return []
        releases: dict[str, list[str]] = {}
        for package, version in conn.execute(
            "SELECT package, version FROM versions WHERE package = ANY(%s) "
            "AND NOT removed AND NOT yanked AND released IS NOT NULL",
            (sorted({project for _, project, _ in waits}),),
        ):
            releases.setdefault(package, []).append(version)
        met = [
            build_id
            for build_id, project, wants in waits
            if requirements_met(parse_wants(wants), project, releases.get(project, []))
        ]
        if not met:
            return []
        requeued = [bid for (bid,) in conn.execute("SELECT requeue_builds(%s)", (met,))]
        log.info("requeued %d builds whose build requirements PyPI now has", len(requeued))
        return requeued

    def _record_rows(self, texts: Sequence[str]) -> None:
        # The rows are JSON already: joined, not parsed and dumped again.
        self.conn.execute("SELECT set_projects(%s::jsonb)", ("[" + ",".join(texts) + "]",))

    def remove_project(self, package: str) -> None:
        self.conn.execute("SELECT remove_project(%s)", (package,))

    # -- the ABIs and the queue ----------------------------------------------------------------

    def get_build_abis(self) -> list[BuildABI]:
        cur = self.conn.execute(
            "SELECT abi_tag, python_order, python_version FROM build_abis ORDER BY python_order"
        )
        return [BuildABI(*row) for row in cur]

    def set_build_abis(self, abis: Iterable[BuildABI]) -> bool:
        """Make the farm build for exactly *abis*; recompute skips and the queue if that changed."""
        abis = list(abis)
        conn = self.conn
        with conn.transaction():
            changed = conn.execute(
                "SELECT set_build_abis(%s)", (Jsonb([abi._asdict() for abi in abis]),)
            ).fetchone()
            if not changed or not changed[0]:
                return False
            log.info("build ABIs are now %s: recomputing the queue", [a.abi_tag for a in abis])
            # Requires-Python strings repeat across millions of versions; judge each once.
            specifiers = conn.execute(
                "SELECT DISTINCT requires_python FROM versions WHERE requires_python IS NOT NULL"
            ).fetchall()
            skips = [
                {"requires_python": spec, "abi_tag": abi.abi_tag, "reason": reason}
                for (spec,) in specifiers
                for abi in abis
                if (reason := excluded_by_requires_python(spec, abi.python_version))
            ]
            conn.execute("SELECT set_requires_python_skips(%s)", (Jsonb(skips),))
            conn.execute("SELECT requeue_all()")
            return True

    def get_queue(self, limit: int) -> QueueSnapshot:
        """The first *limit* entries of each ABI's queue, in build order, and their lengths.

        Build order (migration 0010): an operator's priority first (tier 0), then each
        project's newest release (tier 1), then the rest by their rank in their own project
        (tier 2); ties go to the more popular project, then to the newest upload. One index
        (build_queue_order) holds exactly this order."""
        conn = self.conn
        heads: dict[str, list[PackageVersion]] = {}
        with conn.transaction():
            # read first: each statement below sees every build committed before this one
            row = conn.execute("SELECT coalesce(max(build_id), 0) FROM builds").fetchone()
            last_build = int(row[0]) if row else 0
            for abi in self.get_build_abis():
                cur = conn.execute(
                    "SELECT v.package, v.version FROM build_queue q "
                    "JOIN versions v USING (version_id) WHERE q.abi_tag = %s "
                    "ORDER BY q.tier, q.rank, q.popularity DESC, q.released DESC LIMIT %s",
                    (abi.abi_tag, limit),
                )
                heads[abi.abi_tag] = [PackageVersion(pkg, ver) for pkg, ver in cur]
            # kept by the schema (migration 0004): counting ~5 million rows took 0.4 s a call
            cur = conn.execute("SELECT abi_tag, length FROM queue_lengths()")
            lengths = dict(cur.fetchall())
        return QueueSnapshot(heads, {abi: lengths.get(abi, 0) for abi in heads}, last_build)

    # -- builds and files ----------------------------------------------------------------------

    def reserve_slave_ids(self) -> int:
        """The first of a block of SLAVE_ID_BLOCK slave ids (see migration 0008)."""
        with self.conn.transaction():
            row = self.conn.execute("SELECT reserve_slave_ids()").fetchone()
        assert row is not None
        return int(row[0])

    def is_queued(self, package: str, version: str, abi_tag: str) -> bool:
        """Whether *package* *version* awaits a build for *abi_tag*."""
        row = self.conn.execute(
            "SELECT 1 FROM build_queue q JOIN versions v USING (version_id) "
            "WHERE v.package = %s AND v.version = %s AND q.abi_tag = %s",
            (package, version, abi_tag),
        ).fetchone()
        return row is not None

    def get_file_hashes(self, filenames: Sequence[str]) -> dict[str, str]:
        """The SHA256 of each of *filenames* already published."""
        cur = self.conn.execute(
            "SELECT filename, filehash FROM files WHERE filename = ANY(%s)", (list(filenames),)
        )
        return dict(cur.fetchall())

    def log_build(
        self, slave_id: int, package: str, version: str, abi_tag: str, result: BuildResult
    ) -> int:
        """Record a build; a failed one with its cause and outcome (:meth:`failure`).

        A build the database refuses to record (a constraint its data breaks) is recorded as
        a failure without its files instead, saying why: otherwise it would go back to the
        queue, be built again, be refused again, and so on for ever (issue #15).
        """
        failure = None if result.status else self.failure(package, version, result)
        try:
            return self._log_build(slave_id, package, version, abi_tag, result, failure)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            why = exc.diag.message_primary or str(exc)
        log.error(
            "cannot record the build of %s %s for %s as it is: %s", package, version, abi_tag, why
        )
        note = f"[piwheels] the master could not record this build: {why}\n"
        diagnosis = Diagnosis(Cause.UNKNOWN, summary_line("the master refused its record", why))
        refused = BuildResult(False, result.duration, f"{result.output}{note}", [], diagnosis)
        return self._log_build(
            slave_id, package, version, abi_tag, refused, self._failure_row(diagnosis, final=True)
        )

    def log_lost_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        duration: timedelta,
        reason: str,
    ) -> int:
        """Record that *slave_id* was lost while it built: a give-back (slave-lost)."""
        note = f"[piwheels] the slave was lost during the build: {reason}\n"
        diagnosis = Diagnosis(Cause.SLAVE_LOST, summary_line("the slave was lost", reason))
        result = BuildResult(False, duration, note, [], diagnosis)
        return self._log_build(
            slave_id, package, version, abi_tag, result, self._failure_row(diagnosis)
        )

    def failure(self, package: str, version: str, result: BuildResult) -> dict[str, Any]:
        """A failed build's record: its diagnosis (the master's reading of its log, with the
        Debian packages the slave named) and what comes of it."""
        diagnosis = diagnose(result.output, package, version, result.diagnosis)
        return self._failure_row(diagnosis)

    def _failure_row(self, diagnosis: Diagnosis, *, final: bool = False) -> dict[str, Any]:
        outcome, waits_for = (Outcome.FAILED, None) if final else outcome_of(diagnosis)
        return {
            "cause": str(diagnosis.cause),
            "summary": diagnosis.summary,
            "wants": [f"{want.kind}:{want.name}" for want in diagnosis.wants],
            "needs": list(diagnosis.needs),
            "outcome": str(outcome),
            "waits_for": waits_for,
            "tries": self.give_back.tries,
            "delay": self.give_back.delay.total_seconds(),
        }

    def _log_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        result: BuildResult,
        failure: dict[str, Any] | None,
    ) -> int:
        files = file_rows(result)
        covers = covers_from(f.filename for f in result.files) if result.status else None
        row = self.conn.execute(
            "SELECT log_build(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                slave_id,
                package,
                version,
                abi_tag,
                result.status,
                result.duration,
                # PostgreSQL text cannot hold NUL; a build log may (it is whatever pip printed)
                result.output.replace("\x00", "\\x00"),
                covers,
                Jsonb(files),
                Jsonb(failure) if failure is not None else None,
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])

    # -- the web output ------------------------------------------------------------------------

    def get_project_data(self, package: str) -> ProjectData | None:
        return web_queries.project_data(self.conn, package)

    def get_indexed_projects(self) -> list[str]:
        return web_queries.indexed_projects(self.conn)

    def get_search_entries(self) -> list[SearchEntry]:
        return web_queries.search_entries(self.conn)

    def get_statistics(self) -> Statistics:
        """The farm's figures for the home page, but the output disk's (the master's)."""
        return web_queries.statistics(self.conn)

    def get_build_output(self, build_id: int) -> str | None:
        return web_queries.build_output(self.conn, build_id)

    def save_pending_pages(self, pages: Sequence[tuple[str, str]]) -> None:
        self.conn.execute("SELECT save_pending_pages(%s)", (Jsonb([list(p) for p in pages]),))

    def take_pending_pages(self) -> list[tuple[str, str]]:
        cur = self.conn.execute("SELECT kind, package FROM take_pending_pages()")
        return [(kind, package) for kind, package in cur]

    def last_published(self) -> list[tuple[str, float]]:
        """Each project with files, and when its newest file was recorded (epoch seconds)."""
        cur = self.conn.execute(
            "SELECT v.package, extract(epoch FROM max(b.built_at))::float8 "
            "FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id) "
            "GROUP BY v.package"
        )
        return [(package, float(when)) for package, when in cur]

    def page_requests(self, package: str) -> dict[str, int]:
        """How many times each of *package*'s pages was asked for and not yet written."""
        row = self.conn.execute("SELECT page_requests(%s)", (package,)).fetchone()
        return dict(row[0]) if row else {}

    def pages_written(self, package: str, seen: dict[str, int]) -> None:
        """Forget the requests *seen* before *package*'s pages were written, unless asked
        for again since (see migration 0009)."""
        self.conn.execute("SELECT pages_written(%s, %s)", (package, Jsonb(seen)))

    # -- operators' repairs (Mr. Chase) --------------------------------------------------------

    def package_exists(self, package: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM packages WHERE package = %s", (package,))
        return row.fetchone() is not None

    def version_exists(self, package: str, version: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM versions WHERE package = %s AND version = %s", (package, version)
        )
        return row.fetchone() is not None

    def remove_version(self, package: str, version: str, skip: str) -> list[str]:
        cur = self.conn.execute(
            "SELECT * FROM remove_version(%s, %s, %s)", (package, version, skip)
        )
        return [filename for (filename,) in cur]

    def add_by_hand(self, package: str, version: str | None, skip: str) -> None:
        """Record *package* (and *version*) by hand, the version in its place in the
        project's order (worked out with packaging, as for PyPI's versions)."""
        conn = self.conn
        with conn.transaction():
            orders: list[dict[str, Any]] = []
            if version is not None:
                listed = [
                    v
                    for (v,) in conn.execute(
                        "SELECT version FROM versions WHERE package = %s AND NOT removed",
                        (package,),
                    )
                ]
                places = version_orders([*listed, version])
                orders = [
                    {"version": v, "version_order": order, "prerelease": pre}
                    for v, (order, pre) in places.items()
                ]
            conn.execute(
                "SELECT add_by_hand(%s, %s, %s, %s)", (package, version, skip, Jsonb(orders))
            )

    def requeue_given_back(self) -> list[int]:
        """Requeue the give-backs whose time has come; returns their build ids."""
        return [bid for (bid,) in self.conn.execute("SELECT requeue_given_back()")]

    def retry_cause(self, cause: str, abi_tag: str | None) -> list[int]:
        """Requeue every standing failure (failed or dep-wait) of *cause*, on *abi_tag* or on
        every ABI; returns the build ids. An unknown cause is refused."""
        if cause not in set(Cause):
            raise ValueError(f"no such cause: {cause} (one of {', '.join(Cause)})")
        return [bid for (bid,) in self.conn.execute("SELECT retry_cause(%s, %s)", (cause, abi_tag))]

    def debian_installed(self, package: str, abi_tag: str | None) -> list[int]:
        """The Debian *package* is now on the builders of *abi_tag* (None: all): requeue the
        builds waiting for it; returns their build ids."""
        return [
            bid
            for (bid,) in self.conn.execute("SELECT debian_installed(%s, %s)", (package, abi_tag))
        ]

    def set_priority(self, package: str, version: str | None, wanted: bool) -> None:
        """Put *package* *version* (or, with None, the project's every version) at the front
        of each ABI's queue it is in, or (*wanted* false) take it back to its place."""
        self.conn.execute("SELECT set_priority(%s, %s, %s)", (package, version, wanted))

    def set_skip(self, package: str, version: str | None, reason: str) -> None:
        self.conn.execute("SELECT set_skip(%s, %s, %s)", (package, version, reason))

    def set_yanked(self, package: str, version: str, yanked: bool) -> None:
        self.conn.execute("SELECT set_yanked(%s, %s, %s)", (package, version, yanked))

    def retry_failed(self, package: str, version: str, abi_tag: str | None) -> int:
        row = self.conn.execute(
            "SELECT retry_failed(%s, %s, %s)", (package, version, abi_tag)
        ).fetchone()
        return int(row[0]) if row else 0
