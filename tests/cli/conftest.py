"""The fixtures of the operators' tools' tests: the master they talk to (tool_master.py), and
the logging each tool run in-process leaves behind, taken away."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from tool_master import FakeMaster


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # A tool configures the root logger for the process it thinks it owns: a StreamHandler on
    # this test's captured stderr, which must not outlive the test. (pytest's own handlers are
    # subclasses, added and removed around each phase by pytest itself.)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def master(context: zmq.Context[Any], tmp_path: Path) -> Iterator[FakeMaster]:
    fake = FakeMaster(context, tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # typed ahead, but nobody asked
