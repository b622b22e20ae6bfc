"""What the web output asks of the database: pages' data, and which pages to write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from piwheels.db import web_queries
from piwheels.db.connection import DatabaseConnection
from piwheels.records.projects import (
    PAGE_REQUESTS_AT_ONCE,
    PUBLISHED_PAGE,
    ProjectData,
    SearchEntry,
    Statistics,
    WheelOrigin,
)


class WebOutput(DatabaseConnection):
    """The web output's reads and its pending pages, for :class:`~piwheels.db.database.Database`
    (the reads themselves are :mod:`piwheels.db.web_queries`)."""

    def get_project_data(self, package: str) -> ProjectData | None:
        return web_queries.project_data(self.conn, package)

    def get_indexed_projects(self) -> list[str]:
        return web_queries.indexed_projects(self.conn)

    def get_search_entries(self) -> list[SearchEntry]:
        return web_queries.search_entries(self.conn)

    def get_sitemap_projects(self) -> Iterator[tuple[str, datetime | None]]:
        return web_queries.sitemap_projects(self.conn)

    def get_statistics(self) -> Statistics:
        """The farm's figures for the home page, but the output disk's (the master's)."""
        return web_queries.statistics(self.conn)

    def get_wheel_origins(self, package: str) -> list[WheelOrigin]:
        return web_queries.wheel_origins(self.conn, package)

    def get_build_output(self, build_id: int) -> str | None:
        return web_queries.build_output(self.conn, build_id)

    def save_pending_pages(self, pages: Sequence[tuple[str, str]]) -> None:
        self.conn.execute("SELECT save_pending_pages(%s)", (Jsonb([list(p) for p in pages]),))

    def take_pending_pages(self, after: tuple[str, str] = ("", "")) -> list[tuple[str, str]]:
        """Saved page requests: with nothing *after*, those not of a project (forgotten now)
        and the first of the projects'; else the projects' after *after* (kind, package)."""
        cur = self.conn.execute(
            "SELECT kind, package FROM take_pending_pages(%s, %s, %s)",
            (*after, PAGE_REQUESTS_AT_ONCE),
        )
        return [(kind, package) for kind, package in cur]

    def last_published(self, after: str = "") -> list[tuple[str, float]]:
        """Projects with files, and when each one's newest was recorded (epoch seconds): a
        page of them, in name order, the first after *after* (see migration 0021)."""
        cur = self.conn.execute(
            "SELECT package, extract(epoch FROM last_file_at)::float8 FROM packages "
            "WHERE package > %s AND last_file_at IS NOT NULL ORDER BY package LIMIT %s",
            (after, PUBLISHED_PAGE),
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
