"""The Slave Driver never waits: a slow database holds up only the slave whose step needs it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zmq

from farm import (
    MasterThread,
    ScriptedSlave,
    build_result,
    configure,
    make_config,
    rows,
    stats,
    wait_for,
)
from piwheels import protocols
from piwheels.master import slave_driver
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.slaves import SlaveRecord
from piwheels.records.slaves import SlaveHello, SlaveState
from piwheels.transport import Socket
from pypi_index import LocalPyPI


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    yield running
    running.stop()


@pytest.fixture
def builds_locked(fresh_database: str) -> Iterator[psycopg.Connection[Any]]:
    """Holds the builds table locked (as an operator's long transaction would) until the test
    commits: recording a build waits on it."""
    with psycopg.connect(fresh_database) as conn:
        yield conn


def lock_builds(conn: psycopg.Connection[Any]) -> None:
    conn.execute("LOCK TABLE builds IN ACCESS EXCLUSIVE MODE")


def recorded(dsn: str) -> list[tuple]:
    return rows(dsn, "SELECT b.abi_tag, b.status FROM builds b")


def test_other_slaves_are_answered_while_a_build_is_recorded(
    config: MasterConfig, master: MasterThread, builds_locked: psycopg.Connection[Any]
) -> None:
    first = ScriptedSlave(config, abi="cp39", label="first")
    second = ScriptedSlave(config, abi="cp39", label="second")
    try:
        first.hello()
        assert first.wait_for_build() == ("piwtest-pure", "1.0")
        lock_builds(builds_locked)
        first.sock.send("BUILT", build_result(status=False))  # a failed build: recorded at once
        assert not first.sock.poll(500), "answered before the build could be recorded"
        # the first slave's step waits on the database; the second is answered meanwhile
        started = time.monotonic()
        second.hello()
        assert second.idle()[0] == "SLEEP"  # the only build is taken
        assert time.monotonic() - started < 5
        assert not first.sock.poll(0)
        builds_locked.commit()
        assert first.sock.poll(10_000), "no answer once the database was free"
        assert first.sock.recv()[0] == "DONE"
        assert recorded(config.dsn) == [("cp39", False)]
    finally:
        first.close()
        second.close()


def test_a_slave_that_speaks_before_its_answer_is_dropped_and_its_build_still_recorded(
    config: MasterConfig,
    master: MasterThread,
    builds_locked: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    rude = ScriptedSlave(config, abi="cp39", label="rude", kind=zmq.DEALER)
    try:
        rude.hello()
        assert rude.wait_for_build() == ("piwtest-pure", "1.0")
        lock_builds(builds_locked)
        rude.sock.send("BUILT", build_result(status=False))
        time.sleep(0.3)
        rude.sock.send("IDLE", stats())
        wait_for(lambda: "it broke the protocol" in caplog.text, timeout=10)
        builds_locked.commit()
        # what the slave reported was sound: it is recorded though the slave is gone
        wait_for(lambda: recorded(config.dsn) == [("cp39", False)], timeout=10)
        assert not rude.sock.poll(500), "a dropped slave was answered"
    finally:
        rude.close()


@pytest.fixture
def two_slaves(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> Iterator[tuple[SlaveDriver, ScriptedSlave, ScriptedSlave]]:
    """A master that may owe one answer, two builds queued, two slaves yet to say HELLO."""
    config = configure(
        master_dsn,
        tmp_path,
        pypi_index,
        ["cp39"],
        packages=["piwtest-pure", "piwtest-cext"],
        max_backlog=1,
    )
    master = MasterThread(config).start()
    first = ScriptedSlave(config, abi="cp39", label="first")
    second = ScriptedSlave(config, abi="cp39", label="second")
    try:
        [driver] = wait_for(
            lambda: [t for t in master.master.tasks if isinstance(t, SlaveDriver)],
            what="the Slave Driver",
        )
        wait_for(lambda: len(driver.queue.get("cp39", [])) == 2, what="both builds queued")
        yield driver, first, second
    finally:
        first.close()
        second.close()
        master.stop()


def test_idle_slaves_sleep_while_the_master_is_behind(
    two_slaves: tuple[SlaveDriver, ScriptedSlave, ScriptedSlave],
    builds_locked: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With max_backlog answers owed, a build handed out would only wait behind them: an idle
    slave is told to SLEEP though builds are queued, and builds again once they are given."""
    # only the answers owed: on a fast machine the first build was handed out just now
    monkeypatch.setattr(slave_driver, "JUST_HANDED_OUT", 0.0)
    driver, first, second = two_slaves
    first.hello()
    first_build = first.wait_for_build()
    # writers wait (recording the build), readers do not (the Architect's queue refresh)
    builds_locked.execute("LOCK TABLE builds IN SHARE MODE")
    first.sock.send("BUILT", build_result(status=False))
    wait_for(lambda: driver.db.busy == 1, what="the build's record to be owed")
    second.hello()
    assert second.idle()[0] == "SLEEP"
    assert driver.held_back == 1
    builds_locked.commit()
    assert first.sock.poll(10_000), "no answer once the database was free"
    assert first.sock.recv()[0] == "DONE"
    reply = second.idle()
    assert reply[0] == "BUILD" and tuple(reply[1]) != first_build


def test_a_slave_joining_makes_the_master_as_cautious_as_after_being_behind(
    two_slaves: tuple[SlaveDriver, ScriptedSlave, ScriptedSlave], monkeypatch: pytest.MonkeyPatch
) -> None:
    """New slaves are load the master has not measured, and they come in crowds (every slave
    after a restart): from a HELLO on, builds just handed out count as answers owed."""
    monkeypatch.setattr(slave_driver, "JUST_HANDED_OUT", 60.0)  # room for a loaded machine
    driver, first, second = two_slaves
    first.hello()
    first.wait_for_build()
    second.hello()
    assert second.idle()[0] == "SLEEP"  # though a build is queued and nothing is owed
    assert driver.held_back == 1


def test_after_being_behind_builds_just_handed_out_count_as_owed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slaves put to sleep together wake together: right after the master was behind, the
    IDLEs of such a burst are not all given builds before the first of their results come."""
    monkeypatch.setattr(slave_driver, "JUST_HANDED_OUT", 1.0)  # room for a loaded machine
    context: zmq.Context[Any] = zmq.Context()
    config = make_config("", tmp_path, tmp_path, ["cp311"], max_backlog=2)
    driver = SlaveDriver(config, context)
    driver.add_slave_ids("OK", 1)  # as once() reserves them from the database
    hello = SlaveHello(
        timedelta(minutes=5), timedelta(seconds=5), "311", "cp311", "linux_x86_64", "t", "", "",
        "", "",
    )  # fmt: skip
    slaves = [SlaveRecord(n, b"\0slave%d" % n, hello, state=SlaveState.IDLE) for n in range(4)]

    def idle(slave: SlaveRecord) -> str:
        reply = driver.do_idle(slave, stats())
        assert reply is not None
        return reply[0]

    try:
        driver.queue = {"cp311": [(f"pkg{n}", "1.0") for n in range(8)]}
        # a master that was never behind hands out builds as fast as slaves ask
        assert [idle(s) for s in slaves[:2]] == ["BUILD", "BUILD"]
        for slave in slaves[:2]:
            driver.drop_build(slave)
        # two answers owed: behind
        driver.db.backlog.extend([object(), object()])  # type: ignore[arg-type]
        assert idle(slaves[2]) == "SLEEP"
        driver.db.backlog.clear()
        # caught up, but the builds it hands out now count until their results could be back
        assert [idle(s) for s in slaves[:3]] == ["BUILD", "BUILD", "SLEEP"]
        time.sleep(1.1)
        assert idle(slaves[2]) == "BUILD"
        assert driver.held_back == 2
    finally:
        driver.close()
        context.destroy(linger=0)


def test_slave_states_reach_the_monitors_a_batch_at_a_time(tmp_path: Path) -> None:
    """When hundreds of slaves connect at once, their states go out over several intervals,
    not all in one go between two replies; a slave dropped meanwhile is not reported."""
    context: zmq.Context[Any] = zmq.Context()
    config = make_config("", tmp_path, tmp_path, ["cp311"])
    board = Socket(zmq.PULL, reversed(protocols.status), context=context)
    board.bind(config.status_internal_queue)
    driver = SlaveDriver(config, context)
    driver.add_slave_ids("OK", 1)  # as once() reserves them from the database
    hello = SlaveHello(
        timedelta(minutes=5), timedelta(seconds=5), "311", "cp311", "linux_x86_64", "t", "", "",
        "", "",
    )  # fmt: skip
    count = 2 * slave_driver.STATUS_BATCH + 7
    slaves = [SlaveRecord(n, b"\0slave%d" % n, hello) for n in range(count)]

    def reported() -> list[int]:
        ids = []
        while board.zsock.poll(200):
            action, data = board.recv()
            assert action == "SLAVE"
            ids.append(data[0])
        return ids

    try:
        for slave in slaves:
            driver.slaves[slave.address] = slave
            driver.changed(slave)
        del driver.slaves[slaves[-1].address]  # dropped (and reported GONE) meanwhile
        batches = []
        for _ in range(3):
            driver.report_changes()
            batches.append(reported())
        batch = slave_driver.STATUS_BATCH
        assert [len(b) for b in batches] == [batch, batch, 6]
        assert [n for b in batches for n in b] == list(range(count - 1))
        assert not driver.changes
    finally:
        driver.close()
        board.close()
        context.destroy(linger=0)


def test_a_crowd_of_slaves_is_answered_in_bursts(tmp_path: Path) -> None:
    """Messages waiting from slaves are handled several to a poll, up to SLAVE_BURST."""
    context: zmq.Context[Any] = zmq.Context()
    config = make_config("", tmp_path, tmp_path, ["cp311"], key_dir=None)  # plain: no ZAP here
    driver = SlaveDriver(config, context)
    driver.add_slave_ids("OK", 1)  # as once() reserves them from the database
    hello = SlaveHello(
        timedelta(minutes=5), timedelta(seconds=5), "311", "cp311", "linux_x86_64", "t", "", "",
        "", "",
    )  # fmt: skip
    burst = slave_driver.SLAVE_BURST
    crowd = [
        Socket(zmq.REQ, reversed(protocols.slave_driver), context=context) for _ in range(burst + 3)
    ]
    try:
        for sock in crowd:
            sock.connect(config.slave_queue)
            sock.send("HELLO", hello)
        time.sleep(0.5)  # for all of them to arrive
        driver.handle_slave(0)
        assert len(driver.slaves) == burst
        driver.handle_slave(0)
        assert len(driver.slaves) == burst + 3
        assert all(sock.zsock.poll(5000) and sock.recv()[0] == "ACK" for sock in crowd)
    finally:
        for sock in crowd:
            sock.close()
        driver.close()
        context.destroy(linger=0)
