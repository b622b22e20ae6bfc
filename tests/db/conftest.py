"""A migrated database with four ABIs, as the master's role sees it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.conninfo import make_conninfo

from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.migrate import migrate


@pytest.fixture
def superuser_dsn(fresh_database: str) -> str:
    migrate(fresh_database)
    return fresh_database


@pytest.fixture
def db(superuser_dsn: str) -> Iterator[Database]:
    database = Database(make_conninfo(superuser_dsn, user="piwheels"))
    database.set_build_abis(sorted_abis(["cp313", "cp39", "cp311", "cp310"]))
    yield database
    database.close()
