"""Fixtures for tests that run a whole master: a migrated database and a farm configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from farm import MasterThread, configure
from piwheels.db.migrate import migrate
from piwheels.master.config import MasterConfig
from pypi_index import LocalPyPI


@pytest.fixture
def master_dsn(fresh_database: str) -> str:
    """A migrated database, as the master's unprivileged role sees it."""
    migrate(fresh_database)
    return make_conninfo(fresh_database, user="piwheels")


@pytest.fixture
def farm_config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"])


@pytest.fixture
def master(farm_config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(farm_config).start()
    yield running
    running.stop()
