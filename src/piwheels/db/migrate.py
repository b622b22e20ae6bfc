"""Create the schema and upgrade it, one ordered migration file at a time.

Migrations live in ``migrations/NNNN_name.sql``; each is applied in its own transaction together
with the bump of ``configuration.schema_version``, so a failed upgrade leaves the database at the
last version that fully applied. Downgrades are refused.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import NamedTuple

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Held while migrating so two piw-init-db runs cannot interleave their upgrades.
ADVISORY_LOCK_ID = 0x70697768  # "piwh"


class SchemaError(Exception):
    """The database's schema is not one this code can use (or upgrade)."""


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("piwheels.db").joinpath("migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise SchemaError(f"migration {migration.name!r} is out of sequence")
    return found


def latest_version() -> int:
    return migrations()[-1].version


def current_version(conn: psycopg.Connection) -> int:
    """The schema version recorded in the database, 0 for an empty database."""
    exists = conn.execute("SELECT to_regclass('public.configuration') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT schema_version FROM configuration WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def check_version(conn: psycopg.Connection) -> None:
    """Refuse to run against a schema this code does not match exactly."""
    have, want = current_version(conn), latest_version()
    if have != want:
        action = "run piw-init-db to upgrade it" if have < want else "upgrade piwheels"
        raise SchemaError(
            f"database schema is version {have}, this piwheels needs {want}: {action}"
        )


def migrate(dsn: str, *, master_role: str = "piwheels") -> int:
    """Bring the database at *dsn* (a superuser connection) to the latest schema.

    Creates *master_role* if missing and grants it what the master needs and nothing more.
    Returns the version reached.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            have, want = current_version(conn), latest_version()
            if have > want:
                raise SchemaError(
                    f"database schema is version {have}, newer than this piwheels ({want}); "
                    "downgrades are not supported"
                )
            for migration in migrations()[have:]:
                log.info("applying migration %s", migration.name)
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "UPDATE configuration SET schema_version = %s WHERE id = 1",
                        (migration.version,),
                    )
            _grant(conn, master_role)
            return want
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))


def _grant(conn: psycopg.Connection, role: str) -> None:
    ident = sql.Identifier(role)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            log.info("creating role %s", role)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        for statement in (
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}",
            "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC",
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {}",
        ):
            conn.execute(sql.SQL(statement).format(ident))
