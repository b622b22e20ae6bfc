"""Seraph: requests reach free Oracles, the Slave Driver's first, with one Oracle kept for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import make_config
from piwheels.master.seraph import READY, Seraph, urgent_routing_id
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import tell_tasks
from piwheels.protocols import task_control
from piwheels.transport import Socket


@pytest.fixture
def config(tmp_path: Path) -> MasterConfig:
    return make_config("", tmp_path, tmp_path, ["cp311"])


@pytest.fixture
def seraph(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[Seraph]:
    control = Socket(zmq.PUB, reversed(task_control), context=context)
    control.bind(config.task_control_queue)
    master = context.socket(zmq.PULL)
    master.bind(config.master_control_queue)
    task = Seraph(config, context)
    task.start()
    yield task
    tell_tasks(control, "QUIT")
    task.join(5.0)
    control.close()
    master.close(linger=0)


class FakeOracle:
    """An Oracle that takes requests and answers when the test says."""

    def __init__(self, context: zmq.Context[Any], config: MasterConfig) -> None:
        self.sock = context.socket(zmq.REQ)
        self.sock.connect(config.oracle_workers_queue)
        self.sock.send(READY)
        self.client = b""

    def take(self, timeout_ms: int = 2000) -> bytes | None:
        """The request handed to this Oracle, or None if none comes within *timeout_ms*."""
        if not self.sock.poll(timeout_ms):
            return None
        self.client, empty, request = self.sock.recv_multipart()
        assert empty == b""
        return request

    def answer(self, reply: bytes) -> None:
        self.sock.send_multipart([self.client, b"", reply])


def client(context: zmq.Context[Any], config: MasterConfig, *, urgent: bool) -> zmq.Socket[Any]:
    sock = context.socket(zmq.REQ)
    if urgent:
        sock.setsockopt(zmq.ROUTING_ID, urgent_routing_id())
    sock.connect(config.oracle_queue)
    return sock


def test_one_oracle_is_kept_for_the_slave_drivers_requests(
    seraph: Seraph, config: MasterConfig, context: zmq.Context[Any]
) -> None:
    oracles = [FakeOracle(context, config) for _ in range(2)]
    slow, later = (client(context, config, urgent=False) for _ in range(2))
    slave_driver = client(context, config, urgent=True)
    try:
        slow.send(b"GETSTATS")
        taken = {oracle: oracle.take(200) for oracle in oracles}
        [busy] = [oracle for oracle, request in taken.items() if request == b"GETSTATS"]
        [free] = [oracle for oracle in oracles if oracle is not busy]
        # a second background request waits: the free Oracle is kept for the Slave Driver
        later.send(b"GETPROJECT")
        assert free.take(300) is None
        slave_driver.send(b"LOGBUILD")
        assert free.take() == b"LOGBUILD"
        free.answer(b"recorded")
        assert slave_driver.poll(2000) and slave_driver.recv() == b"recorded"
        # with both Oracles free again, the waiting request goes out
        busy.answer(b"stats")
        assert slow.poll(2000) and slow.recv() == b"stats"
        assert any(oracle.take(1000) == b"GETPROJECT" for oracle in oracles)
    finally:
        for sock in (slow, later, slave_driver, *(o.sock for o in oracles)):
            sock.close(linger=0)


def test_urgent_requests_go_before_those_waiting_longer(
    seraph: Seraph, config: MasterConfig, context: zmq.Context[Any]
) -> None:
    [oracle] = [FakeOracle(context, config)]  # alone, it serves everyone
    first, second = (client(context, config, urgent=False) for _ in range(2))
    slave_driver = client(context, config, urgent=True)
    try:
        first.send(b"GETQUEUE")
        assert oracle.take() == b"GETQUEUE"
        second.send(b"GETPROJECT")
        slave_driver.send(b"GETHASHES")
        while not seraph.urgent:  # both are waiting in Seraph
            assert not oracle.sock.poll(10)
        oracle.answer(b"queue")
        assert oracle.take() == b"GETHASHES"
        oracle.answer(b"hashes")
        assert oracle.take() == b"GETPROJECT"
        oracle.answer(b"project")
        for sock, reply in ((first, b"queue"), (slave_driver, b"hashes"), (second, b"project")):
            assert sock.poll(2000) and sock.recv() == reply
    finally:
        for sock in (first, second, slave_driver, oracle.sock):
            sock.close(linger=0)
