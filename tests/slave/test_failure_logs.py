"""Real logs of wheel builds that fail, each for one known cause, for the failure classifier.

Every case is a tiny real project in tests/packages (piwtest-fail-*, plus piwtest-slow and
piwtest-broken) built for real by the slave's Builder, in its sandbox, against the local index:
the compiler, the linker, pkg-config, pip and Python write the lines the classifier has to read.
All builds run at the same time (they mostly wait on pip), once for the module.

Each log is also kept in tests/slave/failure_logs/<case>.txt, so that the classifier can be
tested without building anything. To write them again from fresh builds::

    PIWHEELS_SAVE_FAILURE_LOGS=1 .venv/bin/python -m pytest tests/slave/test_failure_logs.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from piwheels.slave.sandbox import make_sandbox
from pypi_index import LocalPyPI, SdistFactory

LOGS_DIR = Path(__file__).resolve().parent / "failure_logs"
SAVE_LOGS_VARIABLE = "PIWHEELS_SAVE_FAILURE_LOGS"

#: The timeout of the build that must time out: piwtest-slow sleeps 8 s in its build step alone.
TIMEOUT_SECONDS = 5
#: How long all the builds together may take, on a slow machine; each takes seconds.
BATCH_SECONDS = 240


@dataclass(frozen=True)
class Case:
    """One way a build fails, and what the classifier must make of its log."""

    package: str
    version: str
    #: The value of the classifier's Diagnosis.cause.
    cause: str
    #: Text of the log line that shows the cause: the log must hold it, the summary quote it.
    decisive: str
    #: What is missing, as the log names it (Diagnosis.wants).
    wants: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    # gcc cannot find a header of a system library (Debian's portaudio19-dev is not installed).
    "header": Case(
        "piwtest-fail-header",
        "1.0",
        "missing-header",
        "fatal error: portaudio.h: No such file or directory",
        ("portaudio.h",),
    ),
    # The compile succeeds; ld cannot find the library itself.
    "library": Case(
        "piwtest-fail-library",
        "1.0",
        "missing-library",
        "cannot find -lportaudio",
        ("portaudio",),
    ),
    # pkg-config does not know the library: the same missing -dev package, seen one step earlier.
    "pkgconfig": Case(
        "piwtest-fail-pkgconfig",
        "1.0",
        "missing-library",
        "Package portaudio-2.0 was not found in the pkg-config search path",
        ("portaudio-2.0",),
    ),
    # setuptools runs swig on a SWIG interface; swig is not installed.
    "tool": Case(
        "piwtest-fail-tool",
        "1.0",
        "missing-tool",
        "error: command 'swig' failed: No such file or directory",
        ("swig",),
    ),
    # [build-system] requires piwtest-helper>=2; the index serves 1.0 only.
    "requirement": Case(
        "piwtest-fail-requirement",
        "1.0",
        "build-requirement",
        "Could not find a version that satisfies the requirement piwtest-helper>=2",
        ("piwtest-helper>=2",),
    ),
    # setup.py is Python 2 (a print statement).
    "python2": Case(
        "piwtest-fail-python2",
        "1.0",
        "python-version",
        "SyntaxError: Missing parentheses in call to 'print'",
    ),
    # The build imports numpy, which its build requirements do not name.
    "import": Case(
        "piwtest-fail-import",
        "1.0",
        "import-failed",
        "ModuleNotFoundError: No module named 'numpy'",
        ("numpy",),
    ),
    # The build asks for an exabyte; the traceback ends in a bare "MemoryError" line.
    "memory": Case("piwtest-fail-memory", "1.0", "out-of-memory", "MemoryError"),
    # The build writes to /dev/full: ENOSPC from the kernel. setuptools turns an OSError raised
    # by a command into "error: <message>" and no traceback, so "OSError" is nowhere in the log.
    "disk": Case(
        "piwtest-fail-disk", "1.0", "disk-full", "error: [Errno 28] No space left on device"
    ),
    # The build downloads from a host that cannot resolve. URLError is an OSError: setuptools
    # prints it as "error: <message>" too, without the exception's name.
    "network": Case(
        "piwtest-fail-network",
        "1.0",
        "network",
        "error: <urlopen error [Errno -2] Name or service not known>",
    ),
    # The index has this version as a wheel only: nothing pip may build from (--no-binary), so
    # pip sees no version at all. (It goes on: "No matching distribution found for ...==1.0".)
    "no-sdist": Case(
        "piwtest-wheel-only",
        "1.0",
        "no-sdist",
        "Could not find a version that satisfies the requirement piwtest-wheel-only==1.0 "
        "(from versions: none)",
    ),
    # The Builder stops the build (piwtest-slow sleeps 8 s) when its timeout runs out.
    "timeout": Case(
        "piwtest-slow",
        "1.0",
        "timeout",
        f"pip was killed: it exceeded its timeout of {TIMEOUT_SECONDS} seconds",
    ),
    # A failure the classifier has no rule for: piwtest-broken's own message.
    "unknown": Case(
        "piwtest-broken",
        "1.0",
        "unknown",
        "piwtest-broken: this package always fails to build",
    ),
}

#: The build of piwtest-fail-requirement again, once piwtest-helper 2.0 is on the index.
RETRY = "requirement-met"
HELPER_2 = ("piwtest-helper", "2.0")


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    """This module's own index: the failing projects are no part of DEFAULT_CATALOGUE."""
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        wheel_only = CASES["no-sdist"]
        catalogue = [
            *(
                (case.package, case.version, None)
                for case in CASES.values()
                if case is not wheel_only
            ),
            # Too old for piwtest-fail-requirement; the batch publishes 2.0 later.
            ("piwtest-helper", "1.0", None),
        ]
        # All the sdists in one setuptools run, 2.0's too: publishing it mid-batch is then instant.
        test_sdists.build([*((project, version) for project, version, _ in catalogue), HELPER_2])
        served.add_catalogue(catalogue)
        served.add_wheel_only_version(wheel_only.package, wheel_only.version)
        yield served


@pytest.fixture(scope="module")
def py311(python311: Path) -> Interpreter:
    return inspect_interpreter(python311)


def make_builder(
    interpreter: Interpreter, index: LocalPyPI, work_root: Path, *, timeout: float = 120
) -> Builder:
    return Builder(
        interpreter,
        index.simple_url,
        timedelta(seconds=timeout),
        work_root,
        make_sandbox(grace=1.0),
    )


def wait_for(build: Build, deadline: float) -> None:
    assert build.wait(max(0.0, deadline - time.monotonic())), (
        f"the build of {build.package} {build.version} did not end in {BATCH_SECONDS} s"
    )


def save_logs(builds: dict[str, Build]) -> None:
    """Write each case's log to failure_logs/<case>.txt, whole, for the classifier's tests."""
    LOGS_DIR.mkdir(exist_ok=True)
    for name in CASES:
        (LOGS_DIR / f"{name}.txt").write_text(builds[name].result.output, encoding="utf-8")


@pytest.fixture(scope="module")
def batch(
    index: LocalPyPI, py311: Interpreter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Build]]:
    """Every case's build (and RETRY's), run at the same time, finished."""
    work_root = tmp_path_factory.mktemp("work")
    builder = make_builder(py311, index, work_root)
    impatient = make_builder(py311, index, work_root, timeout=TIMEOUT_SECONDS)
    deadline = time.monotonic() + BATCH_SECONDS
    builds = {
        name: (impatient if name == "timeout" else builder).start(case.package, case.version)
        for name, case in CASES.items()
    }
    try:
        # It fails as soon as pip looks for its build requirements; publishing the helper then
        # lets the retry run alongside the builds still going.
        wait_for(builds["requirement"], deadline)
        index.add_version(*HELPER_2)
        requirement = CASES["requirement"]
        builds[RETRY] = builder.start(requirement.package, requirement.version)
        for build in builds.values():
            wait_for(build, deadline)
        if os.environ.get(SAVE_LOGS_VARIABLE) == "1":
            save_logs(builds)
        yield builds
    finally:
        for build in builds.values():
            build.cleanup()


def saved_log(name: str) -> str:
    path = LOGS_DIR / f"{name}.txt"
    if not path.is_file():
        pytest.fail(f"no saved log {path}: run with {SAVE_LOGS_VARIABLE}=1 to write them")
    return path.read_text(encoding="utf-8")


# -- the real builds -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_build_fails(batch: dict[str, Build], name: str) -> None:
    result = batch[name].result
    assert not result.status, result.output
    assert result.files == []
    assert "[piwheels] build failed" in result.output


@pytest.mark.parametrize("name", CASES)
def test_log_holds_the_decisive_line(batch: dict[str, Build], name: str) -> None:
    output = batch[name].result.output
    assert CASES[name].decisive in output, output


def test_memory_error_ends_a_traceback(batch: dict[str, Build]) -> None:
    # "MemoryError" alone would match a mere mention: it must be the last line of a traceback.
    lines = [line.strip() for line in batch["memory"].result.output.splitlines()]
    traceback = lines.index("Traceback (most recent call last):")
    assert "MemoryError" in lines[traceback:]


def test_no_sdist_is_no_matching_distribution(batch: dict[str, Build]) -> None:
    # pip's last word on a version it may not build, after the decisive line.
    output = batch["no-sdist"].result.output
    assert "ERROR: No matching distribution found for piwtest-wheel-only==1.0" in output


def test_requirement_met_once_published(batch: dict[str, Build]) -> None:
    # The same build as "requirement", started after piwtest-helper 2.0 was added to the index.
    result = batch[RETRY].result
    assert result.status, result.output
    assert [state.filename for state in result.files] == [
        "piwtest_fail_requirement-1.0-py3-none-any.whl"
    ]


# -- the classifier ------------------------------------------------------------------------------


def assert_diagnosis(output: str, case: Case) -> None:
    # Imported here so that, while the classifier is missing or broken, only its own tests fail
    # and the builds' still run.
    from piwheels.diagnosis import classify  # noqa: PLC0415

    diagnosis = classify(output, case.package, case.version)
    assert diagnosis.cause == case.cause, diagnosis
    # Compared by name: each entry may be the name itself or an object with a .name (and its
    # kind); the names are what the log says is missing.
    assert tuple(getattr(want, "name", want) for want in diagnosis.wants) == case.wants, diagnosis
    assert "\n" not in diagnosis.summary, diagnosis
    assert case.decisive in diagnosis.summary, diagnosis


@pytest.mark.parametrize("name", CASES)
def test_classify_build_log(batch: dict[str, Build], name: str) -> None:
    assert_diagnosis(batch[name].result.output, CASES[name])


@pytest.mark.parametrize("name", CASES)
def test_classify_saved_log(name: str) -> None:
    assert_diagnosis(saved_log(name), CASES[name])


# -- the saved logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_saved_log_holds_the_decisive_line(name: str) -> None:
    text = saved_log(name)
    assert CASES[name].decisive in text
    assert "[piwheels] build failed" in text


def test_saved_logs_are_the_cases() -> None:
    assert sorted(path.stem for path in LOGS_DIR.glob("*.txt")) == sorted(CASES)
