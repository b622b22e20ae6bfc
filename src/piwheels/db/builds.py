"""Recording builds and their files, and the slave ids builds are recorded under."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from piwheels.abis import covers_from
from piwheels.db.connection import DatabaseConnection
from piwheels.diagnosis import diagnose, summary_line
from piwheels.failures import Cause, Diagnosis, Outcome, outcome_of
from piwheels.records.builds import BuildOrigin, BuildResult, CrossCheck, CrossCheckReport

log = logging.getLogger("piwheels.db.database")  # the Database's, whichever part of it speaks


class GiveBack(NamedTuple):
    """How a build that failed for a passing cause goes back to the queue (migration 0012)."""

    tries: int = 3  # attempts in all, the last of which is failed if it fails the same way
    delay: timedelta = timedelta(minutes=10)  # before the second; doubled before each next


class CrossCheckShare(NamedTuple):
    """Which builds a second builder checks (migration 0016): the first *first* builds of each
    builder key, then each build with probability *share*."""

    first: int = 3
    share: float = 0.02


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


class BuildRecords(DatabaseConnection):
    """Builds, for :class:`~piwheels.db.database.Database`."""

    give_back: GiveBack  # the Database's
    cross_checks: CrossCheckShare  # the Database's

    def reserve_slave_ids(self) -> int:
        """The first of a block of SLAVE_ID_BLOCK slave ids (see migration 0008)."""
        with self.conn.transaction():
            row = self.conn.execute("SELECT reserve_slave_ids()").fetchone()
        assert row is not None
        return int(row[0])

    def get_file_hashes(self, filenames: Sequence[str]) -> dict[str, str]:
        """The SHA256 of each of *filenames* already published."""
        cur = self.conn.execute(
            "SELECT filename, filehash FROM files WHERE filename = ANY(%s)", (list(filenames),)
        )
        return dict(cur.fetchall())

    def log_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        result: BuildResult,
        origin: BuildOrigin | None = None,
    ) -> int:
        """Record a build, with who built it (*origin*, for its provenance) where known; a
        failed one with its cause and outcome (:meth:`failure`).

        A build the database refuses to record (a constraint its data breaks) is recorded as
        a failure without its files instead, saying why: otherwise it would go back to the
        queue, be built again, be refused again, and so on for ever (issue #15).
        """
        failure = None if result.status else self.failure(package, version, result)
        try:
            with self.conn.transaction():
                build_id = self._log_build(slave_id, package, version, abi_tag, result, failure)
                if origin is not None:
                    self.conn.execute(
                        "SELECT record_origin(%s, %s)", (build_id, Jsonb(origin._asdict()))
                    )
                    share = self.cross_checks
                    self.conn.execute(
                        "SELECT request_cross_check(%s, %s, %s)",
                        (build_id, share.first, share.share),
                    )
                return build_id
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

    def open_cross_checks(self, limit: int) -> list[CrossCheck]:
        """The builds waiting for a builder to check them, oldest first."""
        cur = self.conn.execute("SELECT * FROM open_cross_checks(%s)", (limit,))
        return [CrossCheck(bid, pkg, ver, abi, list(keys)) for bid, pkg, ver, abi, keys in cur]

    def record_cross_check(self, report: CrossCheckReport) -> str:
        """A checker's result; the verdict as it now stands (see migration 0016)."""
        row = self.conn.execute(
            "SELECT record_cross_check(%s, %s, %s, %s)",
            (report.build_id, report.checker_key, report.built, Jsonb(report.files)),
        ).fetchone()
        assert row is not None
        return str(row[0])

    def withhold_build(self, build_id: int) -> list[str]:
        """Take *build_id*'s files out of the index (they stay on record); their names."""
        cur = self.conn.execute("SELECT withhold_build(%s)", (build_id,))
        return [name for (name,) in cur]

    def release_withheld(self, package: str, version: str) -> list[str]:
        """The operator's decision to publish the withheld files of a version after all."""
        cur = self.conn.execute("SELECT release_withheld(%s, %s)", (package, version))
        return [name for (name,) in cur]

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
