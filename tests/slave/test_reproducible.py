"""Two builds of each test sdist on one builder: which wheels come out byte-identical.

The slave sets SOURCE_DATE_EPOCH to the sdist's upload time (from the index's PEP 700 JSON) and
builds C without debug information (which holds the build's random paths); a later issue
cross-checks builders by comparing their wheels.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import inspect_interpreter
from piwheels.slave.sandbox import make_sandbox
from piwheels.slave.toolchains import find_toolchains
from pypi_index import LocalPyPI, SdistFactory
from slave.test_builder import make_builder

PROJECTS = ["piwtest-pure", "piwtest-cext", "piwtest-abi3"]
RUST = shutil.which("cargo") is not None


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([(name, "1.0", None) for name in [*PROJECTS, "piwtest-rust"]])
        yield served


@pytest.fixture(scope="module")
def twice(
    index: LocalPyPI, python311: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Build, Build]]]:
    """Each project built twice, by two builders in two work directories."""
    interpreter = inspect_interpreter(python311)
    sandbox = make_sandbox(grace=1.0)
    builders: list[Builder] = []
    for _ in range(2):
        work_root = tmp_path_factory.mktemp("work")
        builder = make_builder(interpreter, index, work_root, timeout=600, sandbox=sandbox)
        builder.toolchains = find_toolchains(hidden=sandbox.hidden, private=[work_root])
        builders.append(builder)
    projects = PROJECTS + (["piwtest-rust"] if RUST else [])
    builds = {
        name: (builders[0].start(name, "1.0"), builders[1].start(name, "1.0")) for name in projects
    }
    for pair in builds.values():
        for build in pair:
            assert build.wait(600)
    yield builds
    for pair in builds.values():
        for build in pair:
            build.cleanup()


def contents(build: Build) -> dict[str, bytes]:
    [state] = build.result.files
    with zipfile.ZipFile(build.wheel_path(state.filename)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


@pytest.mark.parametrize("project", PROJECTS)
def test_the_same_sdist_makes_the_same_wheel(
    twice: dict[str, tuple[Build, Build]], project: str
) -> None:
    first, second = (build.result for build in twice[project])
    assert first.status and second.status, first.output + second.output
    assert [f.filehash for f in first.files] == [f.filehash for f in second.files]


@pytest.mark.skipif(not RUST, reason="cargo is not on PATH")
def test_a_rust_program_is_identical_but_for_maturins_sbom(
    twice: dict[str, tuple[Build, Build]],
) -> None:
    # maturin writes a CycloneDX SBOM with a random serial number into every wheel (and so a
    # RECORD that differs): not ours to change. Everything else, the program included, is equal.
    first, second = (contents(build) for build in twice["piwtest-rust"])
    differing = sorted(name for name in first if first[name] != second.get(name))
    assert differing in (
        [],
        [
            "piwtest_rust-1.0.dist-info/RECORD",
            "piwtest_rust-1.0.dist-info/sboms/piwtest-rust.cyclonedx.json",
        ],
    )
    assert (
        first["piwtest_rust-1.0.data/scripts/piwtest-rust"]
        == second["piwtest_rust-1.0.data/scripts/piwtest-rust"]
    )
