"""The build queue's order in a running master (issue #14): what a slave is handed, and when.

A local index holds busy projects (long histories, pre-releases, a backport uploaded after a
newer release) and quiet ones (one old release); the master follows it on one ABI and a
scripted slave takes every build it is handed, reporting each as failed (so it leaves the
queue at once). The slave must be handed each project's newest release first, newest upload
first, then the backlog interleaved by each version's rank in its own project; an operator's
``piw-add --priority`` puts a version, or a project, in front of everything until
``--no-priority``; and a new release of a quiet project is handed out ahead of every backlog.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from farm import MasterThread, ScriptedSlave, build_result, configure, rows, wait_for
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI, SdistFactory

BIN = Path(sys.executable).parent
NOW = datetime.now(UTC)

# (project, version, uploaded days ago)
CATALOGUE = [
    # busy: a long history, a pre-release, and a backport uploaded after a newer release
    ("piwtest-pure", "1.0", 400),
    ("piwtest-pure", "1.1", 300),
    ("piwtest-pure", "1.2", 200),
    ("piwtest-pure", "2.0a1", 20),
    ("piwtest-pure", "1.3", 10),
    ("piwtest-pure", "1.2.1", 2),
    # busy: releases often, its newest upload a pre-release
    ("piwtest-cext", "0.1", 90),
    ("piwtest-cext", "0.2", 60),
    ("piwtest-cext", "0.3", 30),
    ("piwtest-cext", "0.4b1", 5),
    # nothing but pre-releases so far
    ("piwtest-py311", "0.1a1", 50),
    ("piwtest-py311", "0.1rc1", 40),
    # quiet: one old release each
    ("piwtest-broken", "1.0", 900),
    ("piwtest-abi3", "1.0", 1500),
]
PROJECTS = sorted({project for project, _, _ in CATALOGUE})

# The documented order, each project's newest release first (the newest final release; the
# newest pre-release of a project with none), newest upload first ...
NEWEST = [
    ("piwtest-pure", "1.3"),  # not 1.2.1: uploaded later, but an older version
    ("piwtest-cext", "0.3"),  # not 0.4b1: final releases come first
    ("piwtest-py311", "0.1rc1"),
    ("piwtest-broken", "1.0"),
    ("piwtest-abi3", "1.0"),
]
# ... then the rest by each version's rank in its own project (2nd newest of every project
# before the 3rd newest of any; a project's final releases before its pre-releases), each rank
# newest upload first.
BACKLOG = [
    ("piwtest-pure", "1.2.1"),  # rank 2
    ("piwtest-py311", "0.1a1"),
    ("piwtest-cext", "0.2"),
    ("piwtest-cext", "0.1"),  # rank 3
    ("piwtest-pure", "1.2"),
    ("piwtest-cext", "0.4b1"),  # rank 4
    ("piwtest-pure", "1.1"),
    ("piwtest-pure", "1.0"),  # rank 5
    ("piwtest-pure", "2.0a1"),  # rank 6
]
QUEUED = "SELECT v.package, v.version, q.tier FROM build_queue q JOIN versions v USING (version_id)"


@pytest.fixture
def index(test_sdists: SdistFactory, tmp_path: Path) -> Iterator[LocalPyPI]:
    with LocalPyPI(sdists=test_sdists, work_dir=tmp_path) as served:
        test_sdists.build(
            [(project, version) for project, version, _ in CATALOGUE] + [("piwtest-abi3", "1.1")]
        )
        for project, version, days in CATALOGUE:
            served.add_version(project, version, upload_time=NOW - timedelta(days=days))
        yield served


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, index, ["cp311"], packages=PROJECTS)


@pytest.fixture
def slave(config: MasterConfig) -> Iterator[ScriptedSlave]:
    master = MasterThread(config).start()
    wait_for(lambda: len(rows(config.dsn, QUEUED)) == len(CATALOGUE), what="the whole index")
    settle(config)
    scripted = ScriptedSlave(config, abi="cp311")
    scripted.hello()
    yield scripted
    scripted.close()
    master.stop()


def settle(config: MasterConfig) -> None:
    """Give the Architect time to hand the Slave Driver the queue as it now stands."""
    time.sleep(5 * config.queue_interval)


def take(slave: ScriptedSlave, count: int) -> list[tuple[str, str]]:
    """The next *count* builds the slave is handed, each reported failed (off the queue)."""
    handed = []
    for _ in range(count):
        package, version = slave.wait_for_build()
        handed.append((package, version))
        assert slave.request("BUILT", build_result(status=False))[0] == "DONE"
    return handed


def run_piw_add(config: MasterConfig, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "piw-add", *argv, "--import-queue", config.import_queue],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def piw_add(config: MasterConfig, *argv: str) -> str:
    """What piw-add says when it succeeds; the Slave Driver has the new order by then."""
    result = run_piw_add(config, *argv)
    assert result.returncode == 0, result.stderr
    settle(config)
    return result.stdout


def test_a_slave_is_handed_builds_in_the_documented_order(slave: ScriptedSlave) -> None:
    assert take(slave, len(NEWEST)) == NEWEST
    assert take(slave, len(BACKLOG)) == BACKLOG
    assert slave.idle()[0] == "SLEEP"  # nothing left


def test_an_operator_moves_a_version_or_a_project_to_the_front_and_back(
    config: MasterConfig, slave: ScriptedSlave
) -> None:
    assert take(slave, len(NEWEST)) == NEWEST
    refused = run_piw_add(config, "piwtest-pure", "9.9", "--priority")
    assert refused.returncode == 1
    assert "no such version: piwtest-pure 9.9" in refused.stderr
    # a version from the back of the backlog
    said = piw_add(config, "piwtest-pure", "1.0", "--priority")
    assert said == "piwtest-pure 1.0 goes to the front of the build queue\n"
    assert take(slave, 1) == [("piwtest-pure", "1.0")]
    # a project: its every queued version, its newest first, until taken back
    piw_add(config, "piwtest-cext", "--priority")
    assert {tier for pkg, _, tier in rows(config.dsn, QUEUED) if pkg == "piwtest-cext"} == {0}
    assert take(slave, 2) == [("piwtest-cext", "0.2"), ("piwtest-cext", "0.1")]
    said = piw_add(config, "PiwTest_CExt", "--no-priority")
    assert said == "piwtest-cext is back in its place in the build queue\n"
    rest = [entry for entry in BACKLOG if entry[0] != "piwtest-cext" or entry[1] == "0.4b1"]
    rest.remove(("piwtest-pure", "1.0"))
    assert take(slave, len(rest)) == rest


def test_a_new_release_of_a_quiet_project_jumps_ahead_of_every_backlog(
    config: MasterConfig, index: LocalPyPI, slave: ScriptedSlave
) -> None:
    assert take(slave, len(NEWEST) + 1) == [*NEWEST, BACKLOG[0]]
    index.add_version("piwtest-abi3", "1.1")
    wait_for(
        lambda: ("piwtest-abi3", "1.1", 1) in rows(config.dsn, QUEUED),
        what="Cloud Gazer to record the new release",
    )
    settle(config)
    assert take(slave, 1) == [("piwtest-abi3", "1.1")]
    assert take(slave, len(BACKLOG) - 1) == BACKLOG[1:]
