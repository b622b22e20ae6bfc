"""Fixtures for tests that run a whole master: a migrated database and a farm configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import MasterThread, configure
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI


@pytest.fixture
def farm_config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"])


@pytest.fixture
def master(farm_config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(farm_config).start()
    yield running
    running.stop()
