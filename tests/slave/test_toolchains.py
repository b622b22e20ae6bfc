"""Toolchains under hidden places (rustup's, pyenv's) bound read-only into the sandbox: a real
Rust build through maturin succeeds with them and fails, classified, without them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.diagnosis import classify
from piwheels.failures import Cause, Want
from piwheels.slave.build import Build
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from piwheels.slave.sandbox import bubblewrap_works, make_sandbox
from piwheels.slave.toolchains import Toolchains, find_toolchains
from pypi_index import LocalPyPI, SdistFactory
from slave.test_builder import make_builder


def make_dirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True)


def test_path_entries_in_hidden_places_are_bound_with_what_they_need(tmp_path: Path) -> None:
    home = tmp_path / "home" / "builder"
    cargo_bin, rustup = home / ".cargo" / "bin", home / ".rustup"
    pyenv = home / ".pyenv"
    local_bin, work = home / ".local" / "bin", home / "work" / "bin"
    make_dirs(cargo_bin, rustup, pyenv / "shims", local_bin, work)
    (cargo_bin / "rustup").touch()
    elsewhere = tmp_path / "opt" / "bin"
    make_dirs(elsewhere)
    path = ":".join(
        map(str, [cargo_bin, pyenv / "shims", local_bin, work, elsewhere, "relative/bin"])
    )
    found = find_toolchains(
        path=path,
        hidden=[tmp_path / "home"],
        private=[home / "work"],
        extra=[tmp_path / "opt"],
        home=home,
        environ={},
    )
    # rustup's proxies with its toolchains; pyenv's whole root for its shims; ~/.local/bin
    # alone (not the rest of ~/.local); the operator's extra; never the slave's own
    assert found.bound == (cargo_bin, rustup, pyenv, local_bin, tmp_path / "opt")
    assert found.env == {"RUSTUP_HOME": str(rustup), "PYENV_ROOT": str(pyenv)}
    assert found.hidden == (work,)
    assert "PATH hidden from builds: " + str(work) in found.describe()


def test_nothing_is_bound_without_a_sandbox_that_hides(tmp_path: Path) -> None:
    found = find_toolchains(path=str(tmp_path), hidden=[], home=tmp_path, environ={})
    assert found == Toolchains((), {}, ())


needs_rust = pytest.mark.skipif(
    not bubblewrap_works() or shutil.which("cargo") is None,
    reason="needs bubblewrap, and cargo on PATH (rustup's, under a home directory)",
)


@pytest.fixture(scope="module")
def rust_index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([("piwtest-rust", "1.0", None)])
        yield served


@pytest.fixture(scope="module")
def py311(python311: Path) -> Interpreter:
    return inspect_interpreter(python311)


@pytest.fixture(scope="module")
def rust_builds(
    rust_index: LocalPyPI, py311: Interpreter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Build]]:
    """The Rust project built with the toolchains found on PATH, and without them."""
    work_root = tmp_path_factory.mktemp("work")
    sandbox = make_sandbox(grace=1.0)
    with_rust = make_builder(py311, rust_index, work_root, timeout=600, sandbox=sandbox)
    with_rust.toolchains = find_toolchains(hidden=sandbox.hidden, private=[work_root])
    without = make_builder(py311, rust_index, work_root, timeout=600, sandbox=sandbox)
    builds = {
        "with": with_rust.start("piwtest-rust", "1.0"),
        "without": without.start("piwtest-rust", "1.0"),
    }
    for build in builds.values():
        assert build.wait(900)
    yield builds
    for build in builds.values():
        build.cleanup()


@needs_rust
def test_a_rust_project_builds_with_the_toolchain_under_home(
    rust_builds: dict[str, Build], tmp_path: Path
) -> None:
    result = rust_builds["with"].result
    assert result.status, result.output
    [wheel] = result.files
    assert wheel.filename.startswith("piwtest_rust-1.0-")
    # the program cargo compiled, in the wheel, runs
    with zipfile.ZipFile(rust_builds["with"].wheel_path(wheel.filename)) as archive:
        program = archive.read("piwtest_rust-1.0.data/scripts/piwtest-rust")
    binary = tmp_path / "piwtest-rust"
    binary.write_bytes(program)
    binary.chmod(0o755)
    ran = subprocess.run([binary], capture_output=True, text=True, check=True)
    assert ran.stdout == "piwtest-rust: built by cargo\n"


@needs_rust
def test_without_the_binding_it_fails_for_want_of_cargo(rust_builds: dict[str, Build]) -> None:
    result = rust_builds["without"].result
    assert not result.status
    diagnosis = classify(result.output, "piwtest-rust", "1.0")
    assert diagnosis.cause == Cause.MISSING_TOOL, result.output[-3000:]
    assert diagnosis.wants == (Want("tool", "cargo"),)
