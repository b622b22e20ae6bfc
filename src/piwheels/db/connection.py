"""The connection every part of :class:`~piwheels.db.database.Database` runs its SQL on."""

from __future__ import annotations

from typing import Any

import psycopg

from piwheels.db.migrate import check_version


class DatabaseConnection:
    """The connection: opened on first use (the schema's version checked), and again after
    the server restarts or the connection breaks."""

    def __init__(self, dsn: str, *, check_schema: bool = True) -> None:
        self.dsn = dsn
        self._check_schema = check_schema
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            if self._check_schema:
                check_version(self._conn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
