"""piw-init-db as an operator runs it: real PostgreSQL."""

from __future__ import annotations

import psycopg

from piwheels.cli import init_db


def test_init_db_creates_upgrades_and_refuses_downgrades(fresh_database: str) -> None:
    assert init_db.main(["--dsn", fresh_database]) == 0
    assert init_db.main(["--dsn", fresh_database]) == 0
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE configuration SET schema_version = 999")
    assert init_db.main(["--dsn", fresh_database]) == 1
