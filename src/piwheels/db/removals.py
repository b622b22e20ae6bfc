"""PyPI's removals and project statuses (PEP 792): which files to take out of the served tree,
and when they are out (see migrations/0018_pypi_statuses.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from piwheels.db.connection import DatabaseConnection
from piwheels.records.removals import MisplacedFile, Withholding

MISPLACED_BATCH = 1000  # files to move handed out at once; the rest at the next look


class Removals(DatabaseConnection):
    """Withholding what PyPI removed or quarantines, for
    :class:`~piwheels.db.database.Database`."""

    def withhold_for_pypi(self, grace: timedelta, max_files: int = MISPLACED_BATCH) -> Withholding:
        """Apply the removals and quarantines older than *grace* (and lift those that ended)
        to the files' reasons, then say which files to move: one transaction, so the files
        named are withheld in the database before anything moves."""
        with self.conn.transaction():
            projects = [
                package
                for (package,) in self.conn.execute("SELECT withhold_for_pypi(%s)", (grace,))
            ]
            files = [
                MisplacedFile(*row)
                for row in self.conn.execute(
                    "SELECT package, filename, withhold FROM misplaced_files(%s)", (max_files,)
                )
            ]
        return Withholding(sorted(projects), files)

    def files_placed(self, filenames: Sequence[str], moved_out: bool) -> None:
        """The File Juggler moved *filenames* out of the served tree (or back): recorded, with
        the need for their projects' pages."""
        self.conn.execute("SELECT files_placed(%s, %s)", (list(filenames), moved_out))

    def set_project_status(
        self, package: str, serial: int | None, status: str, reason: str
    ) -> None:
        """*package*'s status alone, read at *serial* (None: unknown), for a project whose
        details the index withholds."""
        self.conn.execute(
            "SELECT set_project_status(%s, %s, %s, %s)", (package, serial, status, reason)
        )
