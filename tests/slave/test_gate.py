"""The publish gate: real builds whose wheels import, or do not, in the sandbox."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from piwheels.diagnosis import classify
from piwheels.failures import Cause, Want
from piwheels.slave.build import Build
from piwheels.slave.gate import check_wheel
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from pypi_index import LocalPyPI, SdistFactory
from slave.test_builder import make_builder


@pytest.fixture(scope="module")
def gate_index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([("piwtest-gate", "1.0", None), ("piwtest-cext", "1.0", None)])
        yield served


@pytest.fixture(scope="module")
def gate_builds(
    gate_index: LocalPyPI, python311: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Build]]:
    py311: Interpreter = inspect_interpreter(python311)
    builder = make_builder(py311, gate_index, tmp_path_factory.mktemp("work"), timeout=300)
    builds = {name: builder.start(f"piwtest-{name}", "1.0") for name in ("gate", "cext")}
    for build in builds.values():
        assert build.wait(300)
    yield builds
    for build in builds.values():
        build.cleanup()


def test_a_wheel_missing_a_shared_library_is_not_published(
    gate_builds: dict[str, Build],
) -> None:
    result = gate_builds["gate"].result
    assert not result.status
    assert result.files == []  # nothing to send, nothing published
    assert "libpiwgate.so: cannot open shared object file" in result.output
    assert "publish gate: piwtest_gate-1.0-cp311-cp311-linux_x86_64.whl is not published" in (
        result.output
    )
    diagnosis = classify(result.output, "piwtest-gate", "1.0")
    assert diagnosis.cause == Cause.IMPORT_FAILED
    assert diagnosis.wants == (Want("shared-library", "libpiwgate.so"),)
    assert "the built wheel cannot load libpiwgate.so when imported" in diagnosis.summary
    # the slave's own diagnosis says the same (no Debian package provides it)
    assert result.diagnosis is not None
    assert result.diagnosis.cause == Cause.IMPORT_FAILED


def test_a_wheel_that_imports_is_published_as_before(gate_builds: dict[str, Build]) -> None:
    result = gate_builds["cext"].result
    assert result.status, result.output
    assert len(result.files) == 1
    assert "publish gate: import piwtest_cext: ok" in result.output
    assert "publish gate: passed in" in result.output


def plain_run(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return run.returncode, run.stdout + run.stderr


def make_wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_a_dependency_missing_here_passes_with_a_note(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "needy-1.0-py3-none-any.whl",
        {
            "needy/__init__.py": "import piwtest_not_installed_anywhere\n",
            "needy_extra.py": "VALUE = 1\n",
            "needy-1.0.dist-info/METADATA": "Name: needy\nVersion: 1.0\n",
        },
    )
    gate = check_wheel(wheel, tmp_path / "target", sys.executable, plain_run, timeout=60)
    assert gate.passed
    assert gate.lines == [
        (
            "publish gate: import needy needs piwtest_not_installed_anywhere, another "
            "distribution (not installed here): passed"
        ),
        "publish gate: import needy_extra: ok",
    ]


def test_an_import_that_crashes_fails_the_gate(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "crashy-1.0-py3-none-any.whl",
        {"crashy.py": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"},
    )
    gate = check_wheel(wheel, tmp_path / "target", sys.executable, plain_run, timeout=60)
    assert not gate.passed
    assert gate.lines[0] == "publish gate: import crashy: crashed the interpreter (signal 11)"
    diagnosis = classify("\n".join(f"[piwheels] {line}" for line in gate.lines), "crashy", "1.0")
    assert diagnosis.cause == Cause.IMPORT_FAILED
