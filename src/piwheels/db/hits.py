"""Downloads, searches and page hits (migration 0017): the Hit Counter's writes, and the figures
the pages show."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from piwheels.db.connection import DatabaseConnection
from piwheels.records.hits import Downloads, HitBatch, Popular

Conn = psycopg.Connection[Any]
TOP_PROJECTS = 10  # the home page's most downloaded


class HitRecords(DatabaseConnection):
    """The access logs' findings, for :class:`~piwheels.db.database.Database`."""

    def log_cursor(self, log: str) -> int:
        """Where the reading of *log* (the sha256 of its first line) resumes."""
        row = self.conn.execute("SELECT log_cursor(%s)", (log,)).fetchone()
        assert row is not None
        return int(row[0])

    def record_hits(self, batch: HitBatch) -> bool:
        """Record *batch* and move its log's cursor past it, in one transaction; False (and
        nothing recorded) if the cursor is not where the batch starts."""
        row = self.conn.execute(
            "SELECT record_hits(%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                batch.log,
                batch.start,
                batch.end,
                batch.lines,
                batch.bad_lines,
                Jsonb([list(client) for client in batch.clients]),
                Jsonb(
                    [[d.time.isoformat(), d.filename, d.project, d.client] for d in batch.downloads]
                ),
                Jsonb([[h.project, h.kind, h.day.date().isoformat(), h.hits] for h in batch.hits]),
            ),
        ).fetchone()
        assert row is not None
        return bool(row[0])

    def refresh_downloads(self) -> int:
        """Count again the last 30 days of every recently downloaded project (days pass);
        returns how many projects' place in the build queue moved."""
        row = self.conn.execute("SELECT refresh_downloads()").fetchone()
        assert row is not None
        return int(row[0])


def project_downloads(conn: Conn, package: str) -> Downloads:
    """*package*'s downloads in the last 30 days and all time: at most 30 rows by its key."""
    row = conn.execute("SELECT * FROM project_downloads(%s)", (package,)).fetchone()
    assert row is not None
    return Downloads(int(row[0]), int(row[1]))


def farm_downloads(conn: Conn) -> tuple[Downloads, list[Popular]]:
    """The farm's downloads in the last 30 days and all time (a row per day), and the most
    downloaded projects of the last 30 days (the top of one index)."""
    row = conn.execute(
        "SELECT coalesce(sum(hits) FILTER "
        "(WHERE day > (now() AT TIME ZONE 'UTC')::date - 30), 0), coalesce(sum(hits), 0) "
        "FROM farm_daily WHERE kind = 'download'"
    ).fetchone()
    assert row is not None
    top = conn.execute(
        "SELECT package, last_30_days FROM download_totals WHERE last_30_days > 0 "
        "ORDER BY last_30_days DESC, package LIMIT %s",
        (TOP_PROJECTS,),
    )
    return Downloads(int(row[0]), int(row[1])), [Popular(p, int(n)) for p, n in top]
