"""The slave's building half, with real pip builds of real sdists served on 127.0.0.1.

Nothing is mocked: interpreters are pyenv's, builds run pip in the sandbox the slave would use,
and "no process survives" is checked in /proc.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from piwheels.slave.limits import Limits
from piwheels.slave.sandbox import (
    BubblewrapSandbox,
    PlainSandbox,
    Sandbox,
    bubblewrap_works,
    make_sandbox,
)
from pypi_index import DEFAULT_CATALOGUE, LocalPyPI, SdistFactory
from slave.processes import processes_with_env

BROKEN_MESSAGE = "piwtest-broken: this package always fails to build"


# -- helpers -------------------------------------------------------------------------------------


def build_processes(build: Build) -> dict[int, bytes]:
    # Every process of a build inherits the throwaway HOME, wherever it runs.
    return processes_with_env(f"HOME={build.build_dir / 'home'}")


def watch_processes(build: Build, until: Callable[[dict[int, bytes]], bool]) -> dict[int, bytes]:
    """Sample the build's processes until *until* says so or it ends; all seen, by pid."""
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    while build.is_alive() and time.monotonic() < deadline:
        current = build_processes(build)
        seen.update(current)
        if until(current):
            break
        time.sleep(0.05)
    return seen


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    """One index for the module (the function-scoped ``pypi_index`` would restart per test)."""
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([*DEFAULT_CATALOGUE, ("piwtest-slow", "1.0", None)])
        yield served


@pytest.fixture(scope="module")
def py311(python311: Path) -> Interpreter:
    return inspect_interpreter(python311)


@pytest.fixture(scope="module")
def py39(python39: Path) -> Interpreter:
    return inspect_interpreter(python39)


def make_builder(
    interpreter: Interpreter,
    index: LocalPyPI,
    work_root: Path,
    *,
    timeout: float = 120,
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> Builder:
    return Builder(
        interpreter,
        index.simple_url,
        timedelta(seconds=timeout),
        work_root,
        sandbox or make_sandbox(grace=1.0),
        limits=limits,
    )


@pytest.fixture(scope="module")
def batch(
    index: LocalPyPI,
    py311: Interpreter,
    py39: Interpreter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Build]]:
    """The ordinary builds, run at the same time (they mostly wait on pip), finished."""
    work_root = tmp_path_factory.mktemp("work")
    b311 = make_builder(py311, index, work_root)
    b39 = make_builder(py39, index, work_root)
    builds = {
        "pure": b311.start("piwtest-pure", "1.0"),
        "pure-again": b311.start("piwtest-pure", "1.0"),
        "cext": b311.start("piwtest-cext", "1.0"),
        "abi3": b311.start("piwtest-abi3", "1.0"),
        "broken": b311.start("piwtest-broken", "1.0"),
        "cext39": b39.start("piwtest-cext", "1.0"),
        "py311on39": b39.start("piwtest-py311", "1.0"),
    }
    for build in builds.values():
        assert build.wait(180)
    yield builds
    for build in builds.values():
        build.cleanup()


def only_file(result: BuildResult) -> FileState:
    assert result.status, result.output
    assert len(result.files) == 1, result.output
    return result.files[0]


def assert_describes(build: Build, state: FileState) -> None:
    path = build.wheel_path(state.filename)
    assert state.filesize == path.stat().st_size
    assert state.filehash == sha256(path)


# -- builds --------------------------------------------------------------------------------------


def test_pure_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["pure"]
    state = only_file(build.result)
    assert state.filename == "piwtest_pure-1.0-py3-none-any.whl"
    assert (state.package_tag, state.package_version_tag) == ("piwtest-pure", "1.0")
    assert (state.py_version_tag, state.abi_tag, state.platform_tag) == ("py3", "none", "any")
    assert state.requires_python == ">=3.8"
    assert state.dependencies == {Dependency("pip", "piwtest-cext")}
    assert_describes(build, state)
    assert build.result.duration > timedelta(0)
    # The log says what ran and how it ended, around pip's own output.
    assert "--no-binary=piwtest-pure" in build.result.output
    assert "Successfully built piwtest-pure" in build.result.output
    assert "build succeeded" in build.result.output


def test_cext_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["cext"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag) == ("cp311", "cp311")
    assert state.platform_tag == py311.platform_tag
    assert state.filename == f"piwtest_cext-1.0-cp311-cp311-{py311.platform_tag}.whl"
    assert_describes(build, state)
    assert {d.tool for d in state.dependencies} <= {"apt"}
    # It calls only the Python C API, so the linker may leave out even libc (it does here).
    assert {d.package for d in state.dependencies} <= {"libc6"}


def test_cext_build_with_older_pip(batch: dict[str, Build], py39: Interpreter) -> None:
    build = batch["cext39"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag) == ("cp39", "cp39")
    assert_describes(build, state)


def test_abi3_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["abi3"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag, state.platform_tag) == (
        "cp39",
        "abi3",
        py311.platform_tag,
    )
    assert state.requires_python == ">=3.9"
    assert_describes(build, state)


def test_broken_build_fails_with_its_message(batch: dict[str, Build]) -> None:
    result = batch["broken"].result
    assert not result.status
    assert result.files == []
    assert BROKEN_MESSAGE in result.output
    assert "build failed" in result.output


def test_requires_python_refused_by_older_interpreter(batch: dict[str, Build]) -> None:
    result = batch["py311on39"].result
    assert not result.status
    assert result.files == []
    assert ">=3.11" in result.output


def test_wheel_path_only_serves_reported_files(batch: dict[str, Build]) -> None:
    build = batch["pure"]
    with pytest.raises(KeyError):
        build.wheel_path("../../etc/passwd")


def test_cleanup_removes_everything(batch: dict[str, Build]) -> None:
    build = batch["pure-again"]
    wheel = build.wheel_path(only_file(build.result).filename)
    assert wheel.is_file()
    # Only the wheels are kept once the build is over: HOME and TMPDIR went at once.
    assert [p.name for p in build.build_dir.iterdir()] == ["out"]
    build.cleanup()
    assert not build.build_dir.exists()
    build.cleanup()  # twice is harmless


def test_invalid_request_fails_without_running_pip(
    index: LocalPyPI, py311: Interpreter, tmp_path: Path
) -> None:
    build = make_builder(py311, index, tmp_path).start("--index-url=http://evil/", "1.0")
    assert build.wait(10)
    assert not build.result.status
    assert "not a valid project name" in build.result.output
    assert "running:" not in build.result.output


def test_timeout_kills_whole_tree(index: LocalPyPI, py311: Interpreter, tmp_path: Path) -> None:
    # piwtest-slow sleeps 8 s in its build step: far past this timeout.
    builder = make_builder(py311, index, tmp_path, timeout=4)
    build = builder.start("piwtest-slow", "1.0")
    seen = watch_processes(build, lambda _: False)
    assert build.wait(30)
    result = build.result
    assert not result.status
    assert "exceeded its timeout of 4 seconds" in result.output
    assert result.duration < timedelta(seconds=15)
    assert len(seen) > 1, "the build never had child processes to kill"
    assert build_processes(build) == {}
    build.cleanup()


@pytest.mark.parametrize("kind", ["bubblewrap", "plain"])
def test_kill_from_another_thread(
    index: LocalPyPI, py311: Interpreter, tmp_path: Path, kind: str
) -> None:
    if kind == "bubblewrap" and not bubblewrap_works():
        pytest.skip("bubblewrap (bwrap) is not installed or cannot create namespaces here")
    sandbox = BubblewrapSandbox(grace=1.0) if kind == "bubblewrap" else PlainSandbox(grace=1.0)
    build = make_builder(py311, index, tmp_path, sandbox=sandbox).start("piwtest-slow", "1.0")
    # Wait until pip runs the build backend in a process of its own: a tree, mid-build.
    seen = watch_processes(build, lambda now: any(b"_in_process" in c for c in now.values()))
    assert any(b"_in_process" in cmdline for cmdline in seen.values()), seen
    killer = threading.Thread(target=build.kill)
    killer.start()
    killer.join()
    assert build.wait(30)
    assert not build.result.status
    assert "the build was cancelled" in build.result.output
    assert build_processes(build) == {}
    build.cleanup()
    assert not build.build_dir.exists()


# -- the sandbox itself --------------------------------------------------------------------------
