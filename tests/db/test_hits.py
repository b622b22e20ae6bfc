"""Downloads and page hits in the real database (migration 0017): each batch once, its log's
cursor moved with it, the figures the pages show, and popularity in the build queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from db.test_queue import queue_of, record_campaign
from piwheels.db import hits as hit_queries
from piwheels.db.database import Database
from piwheels.records.hits import ClientRow, DailyHits, Download, Downloads, HitBatch, Popular

LOG = "ab" * 32
PIP = ClientRow(
    "pip", "24.0", "CPython", "3.11.2", "3.11.2", "Linux", "6.1", "Debian", "12", "x86_64"
)
UV = ClientRow("uv", "0.5.1", "CPython", "3.12.1", "3.12.1", "Linux", "6.1", "", "", "aarch64")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def batch(
    start: int,
    end: int,
    downloads: list[tuple[str, str, int]],
    hits: list[DailyHits] | None = None,
    *,
    log: str = LOG,
    when: datetime | None = None,
    bad: int = 0,
) -> HitBatch:
    at = when or now()
    return HitBatch(
        log=log,
        start=start,
        end=end,
        lines=len(downloads) + len(hits or []) + bad,
        bad_lines=bad,
        clients=[PIP, UV],
        downloads=[
            Download(at, filename, project, client) for filename, project, client in downloads
        ],
        hits=hits or [],
    )


def midnight(days_ago: int = 0) -> datetime:
    day = now() - timedelta(days=days_ago)
    return day.replace(hour=0, minute=0, second=0)


def test_a_batch_is_recorded_once_and_its_cursor_moves_with_it(db: Database) -> None:
    assert db.log_cursor(LOG) == 0
    first = batch(0, 500, [("busy-1.0-py3-none-any.whl", "busy", 0)] * 3)
    assert db.record_hits(first)
    assert db.log_cursor(LOG) == 500
    # the same batch again (its answer was lost): refused, nothing counted twice
    assert not db.record_hits(first)
    # a batch from elsewhere than the cursor: refused
    assert not db.record_hits(batch(100, 900, [("busy-1.0-py3-none-any.whl", "busy", 1)]))
    assert db.record_hits(batch(500, 900, [("busy-1.0-py3-none-any.whl", "busy", 1)], bad=2))
    assert hit_queries.project_downloads(db.conn, "busy") == Downloads(4, 4)
    row = db.conn.execute(
        "SELECT read_to, lines, bad_lines FROM log_cursors WHERE identity = %s", (LOG,)
    ).fetchone()
    assert row == (900, 6, 2)
    # each client described once, however many downloads it made
    assert db.conn.execute("SELECT count(*) FROM clients").fetchone() == (2,)
    installers = db.conn.execute(
        "SELECT c.installer, count(*) FROM downloads d JOIN clients c USING (client_id) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert installers == [("pip", 3), ("uv", 1)]


def test_the_pages_figures_count_the_last_30_days_and_all_time(db: Database) -> None:
    old = now() - timedelta(days=40)
    assert db.record_hits(batch(0, 10, [("busy-1.0-py3-none-any.whl", "busy", 0)] * 5, when=old))
    searches = [
        DailyHits("busy", "search", midnight(), 7),
        DailyHits("steady", "json", midnight(), 2),
    ]
    assert db.record_hits(batch(10, 20, [("steady-0.3-py3-none-any.whl", "steady", 1)], searches))
    assert hit_queries.project_downloads(db.conn, "busy") == Downloads(0, 5)
    assert hit_queries.project_downloads(db.conn, "steady") == Downloads(1, 1)
    assert hit_queries.project_downloads(db.conn, "never-seen") == Downloads(0, 0)
    farm, top = hit_queries.farm_downloads(db.conn)
    assert farm == Downloads(1, 6)
    assert top == [Popular("steady", 1)]
    by_kind = dict(
        db.conn.execute("SELECT kind, sum(hits) FROM daily_hits GROUP BY kind").fetchall()
    )
    assert by_kind == {"download": 6, "search": 7, "json": 2}


def test_the_last_30_days_are_today_and_the_29_before_and_any_day_ahead(db: Database) -> None:
    """The page's figure is read day by day from a key that starts with the day (0023): each
    day at the window's edges, and a web server's clock that runs into tomorrow."""
    wheel = ("edge-1.0-py3-none-any.whl", "edge", 0)
    days = {30: 1, 29: 10, 0: 100, -1: 1000}  # days ago: downloads on that day
    offset = 0
    for days_ago, count in days.items():
        when = midnight(days_ago) + timedelta(hours=12)
        assert db.record_hits(batch(offset, offset + 10, [wheel] * count, when=when))
        offset += 10
    assert hit_queries.project_downloads(db.conn, "edge") == Downloads(1110, 1111)


def test_popular_projects_newest_releases_are_built_first(db: Database) -> None:
    record_campaign(db)
    newest = [pv for pv in queue_of(db)["cp39"] if pv[0] in ("steady", "quiet")][:2]
    # with no downloads, ties of the newest releases go to the newest upload
    assert newest == [("steady", "0.3"), ("quiet", "1.0")]
    downloads = [("quiet-1.0-py3-none-any.whl", "quiet", 0)] * 3
    assert db.record_hits(batch(0, 100, downloads))
    newest = [pv for pv in queue_of(db)["cp39"] if pv[0] in ("steady", "quiet")][:2]
    assert newest == [("quiet", "1.0"), ("steady", "0.3")]
    popularity = db.conn.execute("SELECT popularity FROM packages WHERE package = 'quiet'")
    assert popularity.fetchone() == (2,)  # 3 downloads: two binary digits


def test_downloads_leave_the_last_30_days_as_days_pass(db: Database, superuser_dsn: str) -> None:
    record_campaign(db)
    assert db.record_hits(batch(0, 100, [("quiet-1.0-py3-none-any.whl", "quiet", 0)] * 4))
    assert db.refresh_downloads() == 0
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("UPDATE daily_hits SET day = day - 31")  # a month later
    assert db.refresh_downloads() == 1
    assert hit_queries.project_downloads(db.conn, "quiet") == Downloads(0, 4)
    assert hit_queries.farm_downloads(db.conn)[1] == []
    newest = [pv for pv in queue_of(db)["cp39"] if pv[0] in ("steady", "quiet")][:2]
    assert newest == [("steady", "0.3"), ("quiet", "1.0")]
