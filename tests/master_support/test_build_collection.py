"""What follows a slave's BUILT, driven by hand: its files fetched through the File Juggler and
the build recorded, or the build abandoned to the queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import file_state, make_config
from piwheels import protocols
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.slaves import SlaveRecord
from piwheels.protocols import NO_DATA
from piwheels.protocols.messages import BuildReport, Expect
from piwheels.records.builds import BuildOrigin, BuildResult
from piwheels.records.slaves import SlaveHello, SlaveState
from piwheels.transport import Socket

HELLO = SlaveHello(
    timedelta(hours=1), timedelta(minutes=5), "311", "cp311", "linux_armv7l", "pi4", *["x"] * 4
)
PURE = file_state("foo-1.0-py3-none-any.whl", b"pure")
BUILD = ("foo", "1.0", "cp311")


@pytest.fixture
def config(tmp_path: Path) -> MasterConfig:
    (tmp_path / "www").mkdir()
    return make_config("", tmp_path / "www", tmp_path, ["cp311"])


def bound(context: zmq.Context[Any], kind: int, protocol: Any, address: str) -> Socket:
    sock = Socket(kind, protocol, context=context)
    sock.bind(address)
    return sock


@pytest.fixture
def ends(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[dict[str, Socket]]:
    """The other tasks' ends of the Slave Driver's sockets: Seraph's, the File Juggler's, the
    Secretary's and the master's (for the status queue)."""
    sockets = {
        "oracles": bound(context, zmq.ROUTER, protocols.oracle, config.oracle_queue),
        "juggler": bound(context, zmq.ROUTER, protocols.file_juggler_control, config.fs_queue),
        "pages": bound(context, zmq.PULL, protocols.web, config.web_queue),
        "status": bound(
            context, zmq.PULL, reversed(protocols.status), config.status_internal_queue
        ),
    }
    yield sockets
    for sock in sockets.values():
        sock.close()


@pytest.fixture
def driver(
    config: MasterConfig, context: zmq.Context[Any], ends: dict[str, Socket]
) -> Iterator[SlaveDriver]:
    task = SlaveDriver(config, context)  # driven by hand here, not started
    yield task
    task.close()


@pytest.fixture
def slave(driver: SlaveDriver) -> SlaveRecord:
    record = SlaveRecord(3, b"\x00slave-3", HELLO)
    record.start_build(BUILD)
    record.result = BuildResult(True, timedelta(seconds=5), "log", [PURE])
    driver.slaves[record.address] = record
    driver.active[BUILD] = record.slave_id
    return record


def request(sock: Socket) -> tuple[str, Any]:
    assert sock.poll(5000), "no request came"
    _, action, data = sock.recv_from()
    return action, data


def test_a_file_not_yet_published_is_expected_from_the_slave(
    driver: SlaveDriver, slave: SlaveRecord, ends: dict[str, Socket]
) -> None:
    assert driver.plan(slave, "OK", {}) is None  # the slave's reply comes with the answer
    assert slave.state == SlaveState.SENDING and slave.sending == PURE
    action, expect = request(ends["juggler"])
    assert action == "EXPECT"
    assert expect == Expect(3, "foo", PURE, b"slave-3", "", "")


def test_a_build_whose_files_are_all_published_is_recorded_at_once(
    driver: SlaveDriver, slave: SlaveRecord, ends: dict[str, Socket]
) -> None:
    assert driver.plan(slave, "OK", {PURE.filename: PURE.filehash}) is None
    assert slave.waiting and slave.recording
    action, report = request(ends["oracles"])
    assert action == "LOGBUILD"
    # with who built it, for its provenance (a slave on a plain queue has no key)
    origin = BuildOrigin(
        "", HELLO.label, HELLO.os_name, HELLO.os_version, "311", HELLO.platform_tag
    )
    assert report == BuildReport(3, "foo", "1.0", "cp311", slave.result, origin)


def test_a_recorded_build_is_finished_announced_and_its_pages_asked_for(
    driver: SlaveDriver, slave: SlaveRecord, ends: dict[str, Socket]
) -> None:
    assert slave.result is not None
    driver.recorded(slave, BUILD, slave.result, [], "OK", 42)
    assert BUILD not in driver.active
    assert driver.finished[BUILD][0] == 42
    assert ends["pages"].recv() == ("BOTH", "foo")
    action, event = ends["status"].recv()
    assert action == "BUILD"
    assert (event.slave_id, event.package, event.succeeded) == (3, "foo", True)
    assert slave.state == SlaveState.IDLE and slave.build is None


@pytest.mark.parametrize(
    ("status", "room", "why"),
    [
        ("ERROR", 0, "the database is unavailable"),
        ("OK", 1 << 62, "the output disk is nearly full"),
    ],
)
def test_a_build_that_cannot_be_taken_goes_back_to_the_queue(
    driver: SlaveDriver,
    slave: SlaveRecord,
    ends: dict[str, Socket],
    caplog: pytest.LogCaptureFixture,
    status: str,
    room: int,
    why: str,
) -> None:
    driver.config.min_free_space = room
    assert driver.plan(slave, status, {}) == ("DONE", NO_DATA)
    assert f"abandoned {BUILD}: {why}" in caplog.text
    assert BUILD not in driver.active and BUILD not in driver.finished
    assert slave.state == SlaveState.IDLE
    assert not ends["juggler"].poll(100)
