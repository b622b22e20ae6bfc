"""When the Slave Driver gives up on a slave, and what becomes of its build: driven by hand."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import make_config
from piwheels import protocols
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.lost_slaves import building_yet_silent, sending_yet_silent
from piwheels.master_support.slaves import SlaveRecord
from piwheels.protocols.messages import LostBuild
from piwheels.records.slaves import SlaveHello, SlaveState
from piwheels.transport import Socket

HELLO = SlaveHello(
    timedelta(hours=1), timedelta(minutes=5), "311", "cp311", "linux_armv7l", "pi4", *["x"] * 4
)


@pytest.fixture
def config(tmp_path: Path) -> MasterConfig:
    return make_config("", tmp_path, tmp_path, ["cp311"], slave_timeout=timedelta(seconds=30))


@pytest.fixture
def oracles(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[Socket]:
    """Seraph's end of the Slave Driver's requests to the Oracles."""
    with Socket(zmq.ROUTER, protocols.oracle, context=context) as sock:
        sock.bind(config.oracle_queue)
        yield sock


@pytest.fixture
def driver(
    config: MasterConfig, context: zmq.Context[Any], status: Socket, oracles: Socket
) -> Iterator[SlaveDriver]:
    task = SlaveDriver(config, context)  # driven by hand here, not started
    yield task
    task.close()


def slave(driver: SlaveDriver, state: SlaveState, silent_for: float = 0.0) -> SlaveRecord:
    record = SlaveRecord(3, b"\x01slave-3", HELLO, state=state)
    record.last_seen = time.monotonic() - silent_for
    if state in (SlaveState.BUILDING, SlaveState.SENDING):
        record.start_build(("foo", "1.0", "cp311"))
        record.state = state
    driver.slaves[record.address] = record
    return record


def test_a_building_slave_owes_word_unless_it_waits_for_the_master(
    driver: SlaveDriver,
) -> None:
    deadline = time.monotonic() - 10
    building = slave(driver, SlaveState.BUILDING, silent_for=11)
    assert building_yet_silent(building, deadline)
    building.waiting = True  # its last message is being worked on: it waits in silence
    assert not building_yet_silent(building, deadline)
    assert not building_yet_silent(slave(driver, SlaveState.IDLE, silent_for=11), deadline)
    assert not building_yet_silent(slave(driver, SlaveState.BUILDING, silent_for=9), deadline)


def test_a_sending_slaves_silence_is_looked_into_once(driver: SlaveDriver) -> None:
    deadline = time.monotonic() - 10
    sending = slave(driver, SlaveState.SENDING, silent_for=11)
    assert sending_yet_silent(sending, deadline)
    sending.checking = True
    assert not sending_yet_silent(sending, deadline)


def test_a_slave_without_a_build_is_simply_gone(
    driver: SlaveDriver, status: Socket, oracles: Socket, caplog: pytest.LogCaptureFixture
) -> None:
    idle = slave(driver, SlaveState.IDLE)
    with caplog.at_level(logging.WARNING):
        driver.forget(idle, "it said BYE")
    assert "slave 3 (pi4) dropped: it said BYE" in caplog.text
    assert driver.slaves == {}
    assert status.recv() == ("GONE", 3)
    assert not oracles.poll(100)


def test_a_build_lost_with_its_slave_is_recorded_as_given_back(
    driver: SlaveDriver, status: Socket, oracles: Socket, caplog: pytest.LogCaptureFixture
) -> None:
    building = slave(driver, SlaveState.BUILDING)
    driver.active[building.build] = building.slave_id  # type: ignore[index]
    with caplog.at_level(logging.INFO):
        driver.forget(building, "building, yet silent for 0:01:00")
    assert "build foo 1.0 for cp311 is given back (slave lost)" in caplog.text
    assert oracles.poll(5000)
    _, action, lost = oracles.recv_from()
    assert action == "LOSTBUILD"
    assert isinstance(lost, LostBuild)
    assert (lost.slave_id, lost.package, lost.version, lost.abi_tag) == (3, "foo", "1.0", "cp311")
    assert lost.reason == "building, yet silent for 0:01:00"
    assert driver.active == {}  # handed out again once the give-back is due


def test_a_build_carried_on_elsewhere_is_not_recorded(driver: SlaveDriver, oracles: Socket) -> None:
    building = slave(driver, SlaveState.BUILDING)
    driver.forget(building, "it came back on another connection", lost=False)
    assert not oracles.poll(200)


def test_a_silent_slave_is_dropped_by_the_clock(
    driver: SlaveDriver, status: Socket, caplog: pytest.LogCaptureFixture
) -> None:
    slave(driver, SlaveState.IDLE, silent_for=31)
    with caplog.at_level(logging.WARNING):
        driver.expire_slaves()
    assert "dropped: silent for more than 0:00:30" in caplog.text
    assert driver.slaves == {}
    assert status.recv() == ("GONE", 3)
