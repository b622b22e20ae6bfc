"""The Database: every job's questions on one connection, and how it gives builds back."""

from __future__ import annotations

from datetime import timedelta

from psycopg.conninfo import make_conninfo
from test_queue import FAILED, version

from piwheels.db.builds import GiveBack
from piwheels.db.database import Database


def test_every_jobs_methods_share_one_connection(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])  # projects and the queue
    db.log_build(1, "foo", "1.0", "cp39", FAILED)  # builds
    db.set_skip("foo", None, "")  # repairs
    assert db.get_indexed_projects() == []  # the web output
    (connections,) = db.conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND usename = 'piwheels'"
    ).fetchone()
    assert connections == 1


def test_builds_are_given_back_as_the_database_was_told(superuser_dsn: str) -> None:
    patient = GiveBack(tries=5, delay=timedelta(hours=1))
    db = Database(make_conninfo(superuser_dsn, user="piwheels"), give_back=patient)
    try:
        db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
        build_id = db.log_lost_build(1, "foo", "1.0", "cp39", timedelta(seconds=5), "silent")
        wait = db.conn.execute(
            "SELECT retry_at - built_at FROM builds WHERE build_id = %s", (build_id,)
        ).fetchone()
        assert wait == (timedelta(hours=1),)
    finally:
        db.close()
    assert Database("dbname=unused").give_back == GiveBack(3, timedelta(minutes=10))
