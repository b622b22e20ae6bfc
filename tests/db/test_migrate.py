"""Creating and upgrading the schema, and the database a master refuses."""

from __future__ import annotations

import psycopg
import pytest

from piwheels.db.database import Database
from piwheels.db.migrate import (
    SchemaError,
    check_version,
    current_version,
    latest_version,
    migrate,
    migrations,
)


def test_master_role_cannot_write_tables_directly(db: Database) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.conn.execute("DELETE FROM builds")


def test_migrate_is_idempotent_and_refuses_downgrades(superuser_dsn: str) -> None:
    assert migrate(superuser_dsn) == latest_version()
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("UPDATE configuration SET schema_version = schema_version + 1")
        with pytest.raises(SchemaError, match="upgrade piwheels"):
            check_version(conn)
    with pytest.raises(SchemaError, match="downgrades are not supported"):
        migrate(superuser_dsn)


def test_master_refuses_an_unmigrated_database(fresh_database: str) -> None:
    with pytest.raises(SchemaError, match="run piw-init-db"):
        Database(fresh_database).conn  # noqa: B018


def test_the_migrations_are_numbered_in_sequence() -> None:
    shipped = migrations()
    assert [migration.version for migration in shipped] == list(range(1, len(shipped) + 1))
    assert shipped[0].name == "0001_create.sql"
    assert latest_version() == shipped[-1].version
    assert all(migration.sql.strip() for migration in shipped)


def test_an_empty_database_is_made_whole_with_a_role_of_its_own(fresh_database: str) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        assert current_version(conn) == 0
        assert migrate(fresh_database, master_role="piw_test_master") == latest_version()
        assert current_version(conn) == latest_version()
        check_version(conn)
        can_write, can_read = conn.execute(
            "SELECT has_table_privilege('piw_test_master', 'builds', 'DELETE'),"
            " has_table_privilege('piw_test_master', 'builds', 'SELECT')"
        ).fetchone()
    assert (can_write, can_read) == (False, True)
