"""Each build's limits with real builds: past its memory, disk or time, a build fails with the
matching cause, and leaves no process and no file behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.cli.slave import make_slave_parser, parse_size
from piwheels.diagnosis import classify
from piwheels.failures import Cause
from piwheels.slave.build import Build
from piwheels.slave.interpreter import inspect_interpreter
from piwheels.slave.limits import Limits, cpu_pinning, disk_used
from piwheels.slave.sandbox import bubblewrap_works
from pypi_index import LocalPyPI, SdistFactory
from slave.test_builder import build_processes, make_builder

needs_bwrap = pytest.mark.skipif(not bubblewrap_works(), reason="needs bubblewrap")

LIMITS = Limits(memory=400 << 20, disk=200 << 20, cpus=1)


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        versions = ("1.0", "2.0", "3.0", "4.0", "5.0")
        served.add_catalogue([("piwtest-hog", v, None) for v in versions])
        yield served


@pytest.fixture(scope="module")
def hogs(
    index: LocalPyPI, python311: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Build, dict[int, bytes]]]]:
    """Each hog built under LIMITS at once, with the build's processes seen while it ran."""
    interpreter = inspect_interpreter(python311)
    work_root = tmp_path_factory.mktemp("work")
    # Only the time hog is meant to meet its timeout; the others, six builds at once on a
    # loaded machine, must reach their own limit first however slowly they get there.
    timed = make_builder(interpreter, index, work_root, timeout=25, limits=LIMITS)
    builder = make_builder(interpreter, index, work_root, timeout=600, limits=LIMITS)
    # the same limits where no filesystem can be mounted: the disk is measured instead
    watching = make_builder(interpreter, index, work_root, timeout=600, limits=LIMITS)
    watching.volumes = False
    watching.disk_how = "measuring it"
    builds = {
        name: builder.start("piwtest-hog", version)
        for name, version in (("memory", "1.0"), ("disk", "2.0"), ("calm", "4.0"), ("tmp", "5.0"))
    }
    builds["time"] = timed.start("piwtest-hog", "3.0")
    builds["disk watched"] = watching.start("piwtest-hog", "2.0")
    seen: dict[str, dict[int, bytes]] = {name: {} for name in builds}
    while any(build.is_alive() for build in builds.values()):
        for name, build in builds.items():
            seen[name].update(build_processes(build))
        builds["calm"].wait(0.2)
    yield {name: (build, seen[name]) for name, build in builds.items()}
    for build in builds.values():
        build.cleanup()


def still_running(build: Build, seen: dict[int, bytes]) -> list[int]:
    """Those of *seen* that still run (a zombie, already killed, reads an empty environment)."""
    return sorted(set(seen) & set(build_processes(build)))


@needs_bwrap
@pytest.mark.parametrize(
    ("name", "cause", "said"),
    [
        ("memory", Cause.OUT_OF_MEMORY, "exceeded its memory limit of 400 MB"),
        ("disk", Cause.DISK_FULL, "ran out of room: it exceeded its disk limit of 200 MB"),
        ("disk watched", Cause.DISK_FULL, "killed: it exceeded its disk limit of 200 MB"),
        ("tmp", Cause.DISK_FULL, "ran out of room: it exceeded its disk limit of 200 MB"),
        ("time", Cause.TIMEOUT, "it exceeded its timeout of 25 seconds"),
    ],
)
def test_a_build_past_a_limit_fails_with_its_cause_and_leaves_nothing(
    hogs: dict[str, tuple[Build, dict[int, bytes]]], name: str, cause: Cause, said: str
) -> None:
    build, processes = hogs[name]
    result = build.result
    assert not result.status
    assert said in result.output, result.output[-3000:]
    assert classify(result.output, "piwtest-hog", "1.0").cause == cause
    assert processes, "the build was never seen running"
    assert still_running(build, processes) == []
    # only the wheel directory (empty) is left until cleanup, never the hog's files
    assert disk_used(build.build_dir) < 1 << 20


@needs_bwrap
def test_a_build_within_its_limits_builds(hogs: dict[str, tuple[Build, dict[int, bytes]]]) -> None:
    build, _ = hogs["calm"]
    assert build.result.status, build.result.output
    assert "limits: memory 400 MB, disk 200 MB, /tmp 100 MB, 1 CPUs" in build.result.output
    if os.geteuid() == 0:
        assert "disk by a filesystem of its own" in build.result.output


def test_limits_are_options_of_the_slave() -> None:
    args = make_slave_parser().parse_args(
        ["--memory-limit", "1.5G", "--disk-limit", "none", "--cpus", "2"]
    )
    assert (args.memory_limit, args.disk_limit, args.cpus) == (1536 << 20, None, 2)
    defaults = make_slave_parser().parse_args([])
    assert (defaults.memory_limit, defaults.disk_limit, defaults.cpus) == (3 << 30, 10 << 30, None)
    assert parse_size("500M") == 500 << 20
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


def test_cpus_pin_the_build_and_tell_the_tools() -> None:
    pin, env = cpu_pinning(1)
    assert env == {"MAKEFLAGS": "-j1", "CMAKE_BUILD_PARALLEL_LEVEL": "1", "CARGO_BUILD_JOBS": "1"}
    assert pin is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        pin()
        os._exit(0 if len(os.sched_getaffinity(0)) == 1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # builds take the CPUs in turn: several slaves (or builds) do not crowd onto the first
    if len(os.sched_getaffinity(0)) > 1:
        chosen = set()
        for _ in range(len(os.sched_getaffinity(0))):
            pin, _ = cpu_pinning(1)
            assert pin is not None
            child = os.fork()
            if child == 0:  # pragma: no cover (the child)
                pin()
                os._exit(min(os.sched_getaffinity(0)))
            _, status = os.waitpid(child, 0)
            chosen.add(os.waitstatus_to_exitcode(status))
        assert len(chosen) > 1
