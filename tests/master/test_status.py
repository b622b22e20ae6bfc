"""What a monitor sees on the status queue, and what its commands do to slaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import MasterThread, ScriptedSlave, build_result, configure, rows, stats, wait_for
from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket
from pypi_index import LocalPyPI


class Monitor:
    """The two sockets a monitor uses, and everything it has been told."""

    def __init__(self, config: MasterConfig) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.status = Socket(zmq.SUB, reversed(protocols.status), context=self.context)
        self.status.zsock.setsockopt(zmq.SUBSCRIBE, b"")
        self.status.connect(config.status_queue)
        self.commands = Socket(zmq.PUSH, reversed(protocols.master_commands), context=self.context)
        self.commands.connect(config.control_queue)
        self.seen: list[tuple[str, Any]] = []

    def send(self, action: str, data: Any = NO_DATA) -> None:
        self.commands.send(action, data)

    def heard(self, action: str) -> list[Any]:
        while self.status.poll(0):
            self.seen.append(self.status.recv())
        return [data for seen, data in self.seen if seen == action]

    def close(self) -> None:
        self.status.close()
        self.commands.close()
        self.context.term()


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


@pytest.fixture
def monitor(config: MasterConfig) -> Iterator[Monitor]:
    master = MasterThread(config).start()
    watcher = Monitor(config)
    yield watcher
    watcher.close()
    master.stop()


def joined(monitor: Monitor) -> None:
    """Wait until the monitor's SUB is hearing the master: a PUB drops what it publishes to a
    subscriber still joining, so HELLO (as piw-monitor does) until the state comes back."""

    def told() -> bool:
        monitor.send("HELLO")
        return bool(monitor.heard("MASTER"))

    wait_for(told, what="the monitor to join")


def slave_state(monitor: Monitor, slave_id: int) -> list[Any]:
    return [s for s in monitor.heard("SLAVE") if s[0] == slave_id]


def test_a_late_monitor_is_sent_the_whole_state(config: MasterConfig, monitor: Monitor) -> None:
    slave = ScriptedSlave(config, abi="cp39", label="pi4")
    try:
        slave_id = slave.hello()

        # HELLO (again and again: the SUB may still be joining) brings MASTER and the slave
        def told() -> bool:
            monitor.send("HELLO")
            return bool(monitor.heard("MASTER")) and bool(slave_state(monitor, slave_id))

        wait_for(told, what="the replayed state")
        state, _, version = monitor.heard("MASTER")[-1]
        assert state == "running" and version
        (sid, label, abi, *_rest) = slave_state(monitor, slave_id)[-1]
        assert (sid, label, abi) == (slave_id, "pi4", "cp39")
        wait_for(lambda: monitor.heard("STATS"), what="statistics")
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
        building = wait_for(
            lambda: [s for s in slave_state(monitor, slave_id) if s[4] == "building"],
            what="the building state",
        )
        assert building[-1][5] == ("piwtest-pure", "1.0")
        assert slave.request("BUILT", build_result(status=False))[0] == "DONE"
        wait_for(lambda: monitor.heard("BUILD"), what="the build event")
        [(_, sid, package, version, abi, ok, _)] = monitor.heard("BUILD")
        assert (sid, package, version, abi, ok) == (slave_id, "piwtest-pure", "1.0", "cp39", False)
    finally:
        slave.close()


def test_sleep_wake_and_kill_a_slave(config: MasterConfig, monitor: Monitor) -> None:
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave_id = slave.hello()
        joined(monitor)
        monitor.send("SLEEP", slave_id)
        wait_for(lambda: any(s[10] for s in slave_state(monitor, slave_id)), what="the sleep")
        assert slave.idle()[0] == "SLEEP"
        monitor.send("WAKE", None)  # every slave
        wait_for(lambda: not slave_state(monitor, slave_id)[-1][10], what="the wake")
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
        monitor.send("KILL", slave_id)
        wait_for(lambda: slave.request("BUSY", stats())[0] == "DONE", what="the build to stop")
        assert slave.idle()[0] == "DIE"
        slave.sock.send("BYE")
        wait_for(lambda: slave_id in monitor.heard("GONE"), what="the slave to go")
    finally:
        slave.close()


def test_a_slave_is_shown_with_the_label_its_key_was_trusted_under(
    config: MasterConfig, monitor: Monitor
) -> None:
    slave = ScriptedSlave(config, abi="cp39", label="rack 3")  # trusted as "rack 3" too
    try:
        slave_id = slave.hello()
        joined(monitor)
        wait_for(lambda: slave_state(monitor, slave_id), what="the slave's status")
        assert slave_state(monitor, slave_id)[-1][11] == "rack 3"
    finally:
        slave.close()


def test_a_slave_that_says_bye_mid_build_gives_it_back_untried(
    config: MasterConfig, monitor: Monitor
) -> None:
    first = ScriptedSlave(config, abi="cp39")
    try:
        first_id = first.hello()
        build = first.wait_for_build()
        first.sock.send("BYE")  # its operator stopped it
        wait_for(lambda: first_id in monitor.heard("GONE"), what="the slave to go")
    finally:
        first.close()
    second = ScriptedSlave(config, abi="cp39")
    try:
        second.hello()
        # at once, not after a give-back's delay (ten minutes here): no try counts against it
        assert second.wait_for_build() == build
    finally:
        second.close()
    assert not rows(config.dsn, "SELECT build_id FROM builds")


def test_pausing_from_the_control_queue_makes_slaves_sleep(
    config: MasterConfig, monitor: Monitor
) -> None:
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        joined(monitor)
        monitor.send("PAUSE")
        wait_for(lambda: any(m[0] == "paused" for m in monitor.heard("MASTER")), what="pause")
        wait_for(lambda: slave.idle()[0] == "SLEEP", what="SLEEP")
        monitor.send("RESUME")
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
    finally:
        slave.close()
