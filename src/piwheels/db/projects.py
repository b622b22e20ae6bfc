"""Following PyPI: its serial, and each project as it describes it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from piwheels.abis import BuildABI
from piwheels.db.project_rows import ProjectUpdate, ProjectVersion, current_row, project_row
from piwheels.db.queue import FarmQueue
from piwheels.failures import parse_wants, requirements_met
from piwheels.records.projects import ProjectRow

log = logging.getLogger("piwheels.db.database")  # the Database's, whichever part of it speaks


class ProjectRecords(FarmQueue):
    """Recording projects, for :class:`~piwheels.db.database.Database`: a project's versions
    are queued (and skipped) for the farm's ABIs, so it builds on :class:`FarmQueue`."""

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
        texts = [current_row(row, abis) for row in rows]
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
        self._record_batch("[" + ",".join(texts) + "]")

    def _record_batch(self, batch: str) -> None:
        """set_projects and what later migrations record beside it, in one call (0020)."""
        self.conn.execute("SELECT record_projects(%s::jsonb)", (batch,))

    def remove_project(self, package: str) -> None:
        self.conn.execute("SELECT remove_project(%s)", (package,))
