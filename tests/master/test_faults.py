"""Faults a real farm meets: a master restart, a dead slave, a master killed mid-build (a
database restart is the Oracle's: test_the_oracle.py)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest

from farm import MasterProcess, MasterThread, SlaveProcess, rows, wait_for
from master.slow_farm import SLOW_BUILDS, slow_farm
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI

pytestmark = pytest.mark.slow


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return slow_farm(master_dsn, tmp_path, pypi_index)


def active_builds(master: MasterThread) -> dict:
    drivers = [task for task in master.master.tasks if isinstance(task, SlaveDriver)]
    return dict(drivers[0].active) if drivers else {}


def test_master_restarted_mid_build(config: MasterConfig, python311: Path, tmp_path: Path) -> None:
    master = MasterThread(config).start()
    # a master timeout far beyond the test's waits: only noticing the lost connection brings
    # the slave back in time
    slave = SlaveProcess(config, python311, tmp_path, "--master-timeout", "600")
    try:
        wait_for(lambda: active_builds(master), timeout=60, what="the build to start")
        assert master.stop() == 0
        master = MasterThread(config).start()
        # the slave says HELLO to the new master at once and keeps its build
        wait_for(lambda: active_builds(master), timeout=20, what="the slave back")
        wait_for(lambda: rows(config.dsn, SLOW_BUILDS), timeout=60, what="the build")
    finally:
        slave.stop()
        master.stop()
    assert [row[1] for row in rows(config.dsn, SLOW_BUILDS)] == [True]
    assert "the master kept our build of piwtest-slow 1.0" in slave.output()
    assert slave.output().count("building piwtest-slow 1.0") == 1  # not built twice


def test_slave_killed_mid_build(
    config: MasterConfig, python311: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    config.busy_timeout = timedelta(seconds=3)  # the general slave timeout stays 30 s
    config.give_back_delay = timedelta(seconds=2)
    master = MasterThread(config).start()
    first = SlaveProcess(config, python311, tmp_path)
    second = None
    try:
        building = wait_for(
            lambda: active_builds(master),
            timeout=60,
            what="the build to start",
            context=first.output,  # why the slave never said HELLO, if it did not
        )
        [first_id] = building.values()
        second = SlaveProcess(config, python311, tmp_path)
        first.kill()
        assert list(first.work_root.glob("build-*")), "the killed slave left its build"
        # the silent slave is dropped, its build is given back (slave-lost) and, after the
        # give-back delay, completes elsewhere
        wait_for(lambda: len(rows(config.dsn, SLOW_BUILDS)) == 2, timeout=60, what="the build")
        # started again, the killed slave removes what its earlier run left
        first = SlaveProcess(config, python311, tmp_path, work_root=first.work_root)
        wait_for(lambda: "removed 1 build directories" in first.output(), timeout=30)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        master.stop()
    lost, done = rows(config.dsn, SLOW_BUILDS)
    assert lost == (first_id, False, "give-back", "slave-lost", True)
    assert done[1:3] == (True, "built") and done[0] != first_id
    assert "building, yet silent for 0:00:03" in caplog.text
    assert "is given back (slave lost)" in caplog.text


def test_a_build_finished_while_the_master_was_killed_is_kept(
    config: MasterConfig, python311: Path, tmp_path: Path
) -> None:
    master = MasterProcess(config, tmp_path)
    slave = SlaveProcess(config, python311, tmp_path, "--master-timeout", "600")
    try:
        wait_for(lambda: "building piwtest-slow" in slave.output(), timeout=60)
        master.kill()
        # the build (8 s) finishes while no master runs
        wait_for(lambda: "saying HELLO to the master there now" in slave.output(), timeout=30)
        time.sleep(10)
        master = MasterProcess(config, tmp_path)
        wait_for(lambda: rows(config.dsn, SLOW_BUILDS), timeout=30, what="the build recorded")
    finally:
        slave.stop()
        master.stop()
    assert [row[1] for row in rows(config.dsn, SLOW_BUILDS)] == [True]
    assert "the master kept our build of piwtest-slow 1.0" in slave.output()
    assert slave.output().count("building piwtest-slow 1.0") == 1  # not built twice
