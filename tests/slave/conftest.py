"""The interpreter running the tests, which the builder's and the sandbox's tests share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from piwheels.slave.interpreter import Interpreter, inspect_interpreter


@pytest.fixture(scope="module")
def host_python() -> Interpreter:
    """The interpreter running the tests, for small commands inside a sandbox."""
    return inspect_interpreter(Path(sys.executable))
