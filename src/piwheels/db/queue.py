"""The ABIs the farm builds for, and the build queue they make."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from psycopg.types.json import Jsonb

from piwheels.abis import BuildABI, excluded_by_requires_python
from piwheels.db.connection import DatabaseConnection
from piwheels.records.builds import PackageVersion, QueueSnapshot

log = logging.getLogger("piwheels.db.database")  # the Database's, whichever part of it speaks


class FarmQueue(DatabaseConnection):
    """The ABIs and the queue, for :class:`~piwheels.db.database.Database`."""

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
            # kept by the schema (migration 0004): a count would read the whole queue each time
            cur = conn.execute("SELECT abi_tag, length FROM queue_lengths()")
            lengths = dict(cur.fetchall())
        return QueueSnapshot(heads, {abi: lengths.get(abi, 0) for abi in heads}, last_build)

    def is_queued(self, package: str, version: str, abi_tag: str) -> bool:
        """Whether *package* *version* awaits a build for *abi_tag*."""
        row = self.conn.execute(
            "SELECT 1 FROM build_queue q JOIN versions v USING (version_id) "
            "WHERE v.package = %s AND v.version = %s AND q.abi_tag = %s",
            (package, version, abi_tag),
        ).fetchone()
        return row is not None
