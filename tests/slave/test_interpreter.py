"""What the slave learns of an interpreter: its version, tags and pip, or that it is none."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from piwheels.slave.interpreter import InterpreterError, inspect_interpreter


@pytest.mark.parametrize(
    ("fixture", "version", "tag"), [("python39", "3.9", "39"), ("python311", "3.11", "311")]
)
def test_interpreter_tags(
    request: pytest.FixtureRequest, fixture: str, version: str, tag: str
) -> None:
    python: Path = request.getfixturevalue(fixture)
    interpreter = inspect_interpreter(python)
    assert interpreter.path == python
    assert interpreter.version.startswith(f"{version}.")
    assert interpreter.py_version_tag == tag
    assert interpreter.abi_tag == f"cp{tag}"
    assert interpreter.platform_tag == f"linux_{os.uname().machine}"
    assert interpreter.pip_version[0].isdigit()
    assert any(python.is_relative_to(prefix) for prefix in interpreter.prefixes)


def test_interpreter_with_a_new_pip_reports_the_plain_platform() -> None:
    # pip 26's vendored packaging lists manylinux tags last; a local build is still linux_*
    interpreter = inspect_interpreter(Path(sys.executable))
    assert interpreter.platform_tag == f"linux_{os.uname().machine}"


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: Path("/bin/true")])
def test_interpreter_rejects_non_python(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path)
    with pytest.raises(InterpreterError) as info:
        inspect_interpreter(path)
    assert repr(str(path)) in str(info.value)
