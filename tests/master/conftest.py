"""Fixtures for tests that run a whole master: a migrated database and a farm configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import MasterThread, configure
from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.transport import Socket
from pypi_index import LocalPyPI


@pytest.fixture
def farm_config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"])


@pytest.fixture
def master(farm_config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(farm_config).start()
    yield running
    running.stop()


@pytest.fixture
def status(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[Socket]:
    """The master's end of the tasks' status reports, for a test module's own ``config`` (a
    task run alone)."""
    with Socket(zmq.PULL, reversed(protocols.status), context=context) as sock:
        sock.bind(config.status_internal_queue)
        yield sock
