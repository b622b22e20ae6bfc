"""A LocalPyPI to ask, and a client asking it, for the tests of piwheels.pypi's normal cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.pypi.client import PyPIClient
from pypi_index import LocalPyPI, SdistFactory


@pytest.fixture
def index(test_sdists: SdistFactory, tmp_path: Path) -> Iterator[LocalPyPI]:
    """A LocalPyPI with two projects; no build dependencies, since nothing is built here."""
    with LocalPyPI(sdists=test_sdists, work_dir=tmp_path) as local:
        local.add_catalogue(
            [
                ("piwtest-pure", "1.0", None),
                ("piwtest-pure", "1.1", "broken release, use 1.0"),
                ("piwtest-cext", "1.0", None),
            ]
        )
        yield local


@pytest.fixture
def client(index: LocalPyPI) -> PyPIClient:
    return PyPIClient(index.simple_url, index.json_url, timeout=10)
