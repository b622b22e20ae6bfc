"""The connection the Database runs on: opened when first used, and again once it is lost."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from piwheels.db.connection import DatabaseConnection
from piwheels.db.migrate import SchemaError


def backend_pid(connection: DatabaseConnection) -> int:
    (pid,) = connection.conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(pid)


def test_it_connects_when_first_used_and_keeps_the_connection(superuser_dsn: str) -> None:
    connection = DatabaseConnection(make_conninfo(superuser_dsn, user="piwheels"))
    assert connection._conn is None
    try:
        first = connection.conn
        assert first.autocommit  # each method is its own transaction
        assert connection.conn is first
    finally:
        connection.close()
    assert connection._conn is None
    connection.close()  # closing twice is harmless


def test_a_lost_connection_is_made_again(superuser_dsn: str) -> None:
    connection = DatabaseConnection(make_conninfo(superuser_dsn, user="piwheels"))
    try:
        lost = backend_pid(connection)
        with psycopg.connect(superuser_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (lost,))
        with pytest.raises(psycopg.OperationalError):
            connection.conn.execute("SELECT 1")
        assert backend_pid(connection) != lost  # broken: the next use reconnects
        connection.conn.close()
        assert connection.conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        connection.close()


def test_the_schema_is_checked_unless_told_not_to(fresh_database: str) -> None:
    with pytest.raises(SchemaError, match="database schema is version 0"):
        DatabaseConnection(fresh_database).conn  # noqa: B018
    unchecked = DatabaseConnection(fresh_database, check_schema=False)
    try:
        assert unchecked.conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        unchecked.close()
