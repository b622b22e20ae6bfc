"""Failed builds' outcomes end to end (issue #15): a real master, real slaves building the tiny
failing projects of tests/packages with pip, the local PyPI, a real PostgreSQL.

Each test follows a project that fails for one cause and checks what the farm does next: a
build requirement PyPI lacks waits for its release (dep-wait) and is built once it comes; a
passing cause is tried again after a delay, a few times (give-back); a missing header waits for
the operator's Debian package; a build the database refuses is failed once, not rebuilt for ever.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from farm import MasterThread, ScriptedSlave, SlaveProcess, configure, rows, wait_for
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.config import MasterConfig
from piwheels.records.builds import BuildResult
from piwheels.slave.build_volume import mount_points
from pypi_index import LocalPyPI, SdistFactory

pytestmark = pytest.mark.slow

ABI = "cp311"
BIN = Path(sys.executable).parent

# every sdist this module publishes, made in one setuptools run
SDISTS = [
    ("piwtest-fail-requirement", "1.0"),
    ("piwtest-helper", "1.0"),
    ("piwtest-helper", "2.0"),
    ("piwtest-fail-network", "1.0"),
    ("piwtest-fail-header", "1.0"),
    ("piwtest-slow", "1.0"),
]


class Build(NamedTuple):
    build_id: int
    version: str
    built_by: int
    status: bool
    outcome: str
    cause: str | None
    summary: str
    wants: list[str]
    needs: list[str]
    waits_for: str | None
    requeued: bool
    output: str


BUILDS = """
    SELECT b.build_id, v.version, b.built_by, b.status, b.outcome, b.cause, b.summary, b.wants,
           b.needs, b.waits_for, b.requeued_at IS NOT NULL, o.output
    FROM builds b JOIN versions v USING (version_id) LEFT JOIN output o USING (build_id)
    WHERE v.package = %s AND b.abi_tag = %s ORDER BY b.build_id
"""
QUEUED = """
    SELECT v.version FROM build_queue q JOIN versions v USING (version_id)
    WHERE v.package = %s AND q.abi_tag = %s
"""


def builds(config: MasterConfig, package: str, abi: str = ABI) -> list[Build]:
    """The builds of *package* for *abi*, oldest first."""
    return [Build(*row) for row in rows(config.dsn, BUILDS, package, abi)]


def queued(config: MasterConfig, package: str, abi: str = ABI) -> list[str]:
    return [version for (version,) in rows(config.dsn, QUEUED, package, abi)]


def project_json(config: MasterConfig, package: str) -> dict[str, Any] | None:
    path = config.output_path / "project" / package / "json" / "index.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return None


def cell(config: MasterConfig, package: str, version: str, abi: str = ABI) -> dict[str, Any]:
    """The (version, ABI) cell of the project's JSON as last written; {} if none yet."""
    for entry in (project_json(config, package) or {}).get("versions", []):
        if entry["version"] == version:
            return entry["abis"].get(abi) or {}
    return {}


def cell_in(
    config: MasterConfig, package: str, version: str, state: str, timeout: float = 60
) -> dict[str, Any]:
    """The cell once the page shows it in *state* (pages are written a moment after a build)."""
    return wait_for(
        lambda: (found := cell(config, package, version)).get("state") == state and found,
        timeout=timeout,
        what=f"the page of {package} {version} to show {state}",
    )


def active_builds(master: MasterThread) -> dict[tuple[str, str, str], int]:
    drivers = [task for task in master.master.tasks if isinstance(task, SlaveDriver)]
    return dict(drivers[0].active) if drivers else {}


def piw(config: MasterConfig, tool: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """An operator's tool, as its installed console script, talking to the running master."""
    command = [str(BIN / f"piw-{tool}"), *argv, "--import-queue", config.import_queue]
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False
    )


def has_debian_data() -> bool:
    """Whether apt-file and its Contents data are on this machine (see tests/slave/test_debian),
    so that our slave can name the Debian package of a missing header."""
    if shutil.which("apt-file") is None:
        return False
    run = subprocess.run(
        ["apt-file", "search", "-l", "/usr/bin/dpkg"], capture_output=True, text=True, check=False
    )
    return run.returncode == 0 and "dpkg" in run.stdout


@pytest.fixture
def index(pypi_index: LocalPyPI, test_sdists: SdistFactory) -> LocalPyPI:
    test_sdists.build(SDISTS)
    return pypi_index


class Farm:
    """A master in this process and the slaves a test starts, all stopped at the test's end."""

    def __init__(self, config: MasterConfig, python: Path, work: Path) -> None:
        self.config = config
        self.python = python
        self.work = work
        self.master = MasterThread(config).start()
        self.slaves: list[SlaveProcess] = []

    def slave(self) -> SlaveProcess:
        started = SlaveProcess(self.config, self.python, self.work)
        self.slaves.append(started)
        return started

    def stop(self) -> None:
        try:
            for slave in self.slaves:
                slave.stop()  # SIGTERM, then SIGKILL after 15 s
        finally:
            self.master.stop()


@pytest.fixture
def start_farm(master_dsn: str, tmp_path: Path, index: LocalPyPI, python311: Path) -> Iterator[Any]:
    started: list[Farm] = []

    def start(packages: list[str], **config: Any) -> Farm:
        # a slave slowed down by a loaded machine is not taken for lost (a slave-lost give-back
        # would stand where the test expects its own cause); test_..._kills_its_slaves sets less
        config.setdefault("slave_timeout", timedelta(minutes=2))
        config.setdefault("busy_timeout", timedelta(minutes=2))
        farm = Farm(
            configure(master_dsn, tmp_path, index, [ABI], packages=packages, **config),
            python311,
            tmp_path,
        )
        started.append(farm)
        return farm

    yield start
    for farm in started:
        farm.stop()


def no_further_build(farm: Farm, package: str, seconds: float = 10.0) -> list[Build]:
    """The builds of *package* after *seconds* more, during which no build of it may start."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not [key for key in active_builds(farm.master) if key[0] == package]
        time.sleep(0.2)
    return builds(farm.config, package)


# -- dep-wait on PyPI ----------------------------------------------------------------------------


def test_a_build_requirement_released_later_is_built_without_an_operator(
    start_farm: Any, index: LocalPyPI
) -> None:
    package = "piwtest-fail-requirement"
    index.add_version("piwtest-helper", "1.0")  # too old: piwtest-fail-requirement needs >=2
    index.add_version(package, "1.0")
    farm = start_farm([package, "piwtest-helper"])
    config = farm.config
    farm.slave()
    farm.slave()  # the helper's build runs alongside

    [waiting] = wait_for(lambda: builds(config, package), timeout=120, what="the first build")
    assert waiting.status is False
    assert (waiting.outcome, waiting.cause, waiting.waits_for) == (
        "dep-wait",
        "build-requirement",
        "piwtest-helper",
    ), waiting.summary
    assert waiting.wants == ["requirement:piwtest-helper>=2"]
    assert "piwtest-helper>=2" in waiting.summary
    assert not waiting.requeued
    assert not queued(config, package)  # it waits: not built again meanwhile

    shown = cell_in(config, package, "1.0", "dep-wait")
    assert shown["cause"] == "build-requirement"
    assert shown["needs"] == ["piwtest-helper>=2"]
    assert shown["reason"] == "waits for piwtest-helper>=2 on PyPI"
    assert shown["build_id"] == waiting.build_id
    assert "piwtest-helper>=2" in shown["summary"]

    # PyPI gets what it waits for: Cloud Gazer records it and the build is queued again
    index.add_version("piwtest-helper", "2.0")
    recorded = "SELECT 1 FROM versions WHERE package = 'piwtest-helper' AND version = '2.0'"
    wait_for(lambda: rows(config.dsn, recorded), timeout=60, what="piwtest-helper 2.0 recorded")
    wait_for(
        lambda: builds(config, package)[0].requeued,
        timeout=30,
        what="the dep-wait queued again once piwtest-helper 2.0 is recorded",
    )
    wait_for(lambda: len(builds(config, package)) == 2, timeout=120, what="the second build")
    wheel = (
        config.output_path / "simple" / package / "piwtest_fail_requirement-1.0-py3-none-any.whl"
    )
    wait_for(wheel.exists, timeout=60, what="the wheel")
    first, second = builds(config, package)
    assert first.build_id == waiting.build_id
    assert (first.status, first.outcome, first.requeued) == (False, "dep-wait", True)
    assert (second.status, second.outcome, second.cause, second.requeued) == (
        True,
        "built",
        None,
        False,
    )
    shown = cell_in(config, package, "1.0", "built")
    assert shown["build_id"] == second.build_id
    assert shown["cause"] is None and shown["needs"] == []
    version = next(v for v in project_json(config, package)["versions"] if v["version"] == "1.0")
    assert [(b["build_id"], b["outcome"], b["requeued"]) for b in version["builds"]] == [
        (first.build_id, "dep-wait", True),
        (second.build_id, "built", False),
    ]


# -- give-back -----------------------------------------------------------------------------------


def test_a_network_failure_is_given_back_then_failed(start_farm: Any, index: LocalPyPI) -> None:
    package = "piwtest-fail-network"
    index.add_version(package, "1.0")
    farm = start_farm([package], give_back_tries=2, give_back_delay=timedelta(seconds=2))
    config = farm.config
    farm.slave()

    wait_for(lambda: len(builds(config, package)) == 2, timeout=120, what="the second try")
    after = no_further_build(farm, package, 8.0)  # four times the first delay: no third try
    assert len(after) == 2, after
    first, second = after
    assert (first.status, first.outcome, first.cause, first.requeued) == (
        False,
        "give-back",
        "network",
        True,
    )
    assert (second.status, second.outcome, second.cause, second.requeued) == (
        False,
        "failed",
        "network",
        False,
    )
    assert second.summary.endswith("(tried 2 times)"), second.summary
    assert "Name or service not known" in second.summary
    assert not queued(config, package)
    shown = cell_in(config, package, "1.0", "failed")
    assert (shown["build_id"], shown["cause"]) == (second.build_id, "network")
    assert shown["summary"].endswith("(tried 2 times)")


def test_a_build_that_kills_its_slaves_is_failed_not_rebuilt_for_ever(
    start_farm: Any, index: LocalPyPI
) -> None:
    package = "piwtest-slow"  # 8 s of build: time to kill its slave in
    index.add_version(package, "1.0")
    farm = start_farm(
        [package],
        give_back_tries=2,
        give_back_delay=timedelta(seconds=2),
        busy_timeout=timedelta(seconds=3),  # the general slave timeout stays 30 s
    )
    config = farm.config
    first = farm.slave()
    [first_id] = wait_for(
        lambda: active_builds(farm.master).values(), timeout=60, what="the first try"
    )
    second = farm.slave()  # a fresh slave each time
    first.kill()
    wait_for(lambda: builds(config, package), timeout=60, what="the first slave lost")
    # its build's filesystem went with it (the slave's own mount namespace)
    assert [p for p in mount_points() if first.work_root in p.parents] == []
    # given back: after its delay, handed to the fresh slave
    [second_id] = wait_for(
        lambda: active_builds(farm.master).values(), timeout=60, what="the second try"
    )
    assert second_id != first_id
    third = farm.slave()
    second.kill()
    wait_for(lambda: len(builds(config, package)) == 2, timeout=60, what="the second slave lost")

    # failed: the third slave, idle all along, is never handed it
    after = no_further_build(farm, package, 10.0)
    assert len(after) == 2, after
    lost, failed = after
    assert (lost.built_by, lost.status, lost.outcome, lost.cause, lost.requeued) == (
        first_id,
        False,
        "give-back",
        "slave-lost",
        True,
    )
    assert (failed.built_by, failed.status, failed.outcome, failed.cause, failed.requeued) == (
        second_id,
        False,
        "failed",
        "slave-lost",
        False,
    )
    assert failed.summary.endswith("(tried 2 times)"), failed.summary
    assert not queued(config, package)
    assert third.process.poll() is None
    assert "building piwtest-slow" not in third.output()


# -- a record the database refuses ---------------------------------------------------------------


def test_a_build_the_database_refuses_is_failed_once(start_farm: Any, fresh_database: str) -> None:
    package = "piwtest-pure"
    # every real file breaks this rule: the build's record, files and all, is refused
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("ALTER TABLE files ADD CONSTRAINT refuse_all CHECK (filesize < 0)")
    try:
        farm = start_farm([package])
        config = farm.config
        assert config.build_abis == [ABI]
        farm.slave()
        [refused] = wait_for(lambda: builds(config, package), timeout=120, what="the build")
        shown = cell_in(config, package, "1.0", "failed")
        directory = config.output_path / "simple" / package
        # the wheel the File Juggler fetched for it is deleted (a request after the record)
        wait_for(lambda: not list(directory.glob("*.whl")), timeout=30, what="the wheel deleted")
        after = no_further_build(farm, package, 10.0)  # no loop of rebuilds
    finally:
        with psycopg.connect(fresh_database, autocommit=True) as conn:
            conn.execute("ALTER TABLE files DROP CONSTRAINT IF EXISTS refuse_all")

    assert after == [refused]
    assert (refused.version, refused.status, refused.outcome, refused.cause) == (
        "1.0",
        False,
        "failed",
        "unknown",
    )
    assert refused.summary.startswith("the master refused its record"), refused.summary
    assert "refuse_all" in refused.summary
    assert "[piwheels] the master could not record this build" in refused.output
    assert not queued(config, package)
    assert rows(config.dsn, "SELECT filename FROM files") == []
    # under simple/, nothing the database does not list: no wheel, nothing half-written
    left = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    assert not [p for p in left if p.name.endswith((".whl", ".part", ".metadata"))], left
    assert not list(config.incoming_dir.iterdir())
    assert (shown["build_id"], shown["cause"]) == (refused.build_id, "unknown")
    assert shown["summary"] == refused.summary
    assert shown["reason"] == "unknown"


# -- a missing header and its Debian package -----------------------------------------------------


def test_a_missing_header_names_its_debian_package_and_waits_for_it(
    start_farm: Any, index: LocalPyPI
) -> None:
    package = "piwtest-fail-header"
    index.add_version(package, "1.0")
    farm = start_farm([package])
    config = farm.config
    farm.slave()

    [first] = wait_for(lambda: builds(config, package), timeout=120, what="the build")
    assert (first.status, first.cause) == (False, "missing-header")
    assert first.wants == ["header:portaudio.h"]
    assert "portaudio.h" in first.summary
    if not has_debian_data():
        # the slave cannot tell which package provides it, and says so: nothing to wait for
        assert (first.outcome, first.needs) == ("failed", [])
        assert "the builder has no Debian package data" in first.summary, first.summary
        shown = cell_in(config, package, "1.0", "failed")
        assert shown["cause"] == "missing-header"
        return

    assert (first.outcome, first.needs, first.waits_for) == ("dep-wait", ["portaudio19-dev"], None)
    shown = cell_in(config, package, "1.0", "dep-wait")
    assert shown["cause"] == "missing-header"
    assert shown["needs"] == ["portaudio19-dev"]
    assert shown["reason"] == f"needs portaudio19-dev on the {ABI} builders"
    time.sleep(2)  # it waits: not built again meanwhile
    assert len(builds(config, package)) == 1
    assert not queued(config, package)

    # the operator says it is installed (it is not: the next try fails the same way)
    result = piw(config, "add", "--installed", "portaudio19-dev", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the builds waiting for portaudio19-dev are queued again\n"
    wait_for(lambda: len(builds(config, package)) == 2, timeout=120, what="the second try")
    again, second = builds(config, package)
    assert (again.build_id, again.requeued) == (first.build_id, True)
    assert (second.outcome, second.cause, second.needs, second.requeued) == (
        "dep-wait",
        "missing-header",
        ["portaudio19-dev"],
        False,
    )


# -- found by the tests above -------------------------------------------------------------------


def test_a_requeued_build_is_handed_out_at_once(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> None:
    config = configure(
        master_dsn,
        tmp_path,
        pypi_index,
        [ABI],
        packages=["piwtest-pure"],
        give_back_delay=timedelta(seconds=1),
    )
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi=ABI)
    try:
        slave.hello()
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
        log = "error: <urlopen error [Errno -2] Name or service not known>\n"
        result = BuildResult(False, timedelta(seconds=2), log, [])
        assert slave.request("BUILT", result)[0] == "DONE"
        [(outcome,)] = rows(config.dsn, "SELECT outcome FROM builds")
        assert outcome == "give-back"
        wait_for(lambda: queued(config, "piwtest-pure"), timeout=30, what="the give-back due")
        # queued again after its second: an idle slave should be handed it at once
        assert slave.wait_for_build(timeout=10) == ("piwtest-pure", "1.0")
    finally:
        slave.close()
        master.stop()
