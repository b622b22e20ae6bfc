"""The master the monitor's tests play (fake_master.py), closed after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_master import FakeMaster


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeMaster]:
    master = FakeMaster(tmp_path)
    yield master
    master.close()
