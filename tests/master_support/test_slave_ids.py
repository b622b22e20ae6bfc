"""The Slave Driver's slave ids: a HELLO that comes before there are any is held, not dropped."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import zmq

from farm import make_config
from piwheels import protocols
from piwheels.master.slave_driver import SlaveDriver
from piwheels.records.slaves import SlaveHello
from piwheels.transport import Socket


def test_hellos_wait_for_slave_ids_rather_than_go_unanswered(tmp_path: Path) -> None:
    """A crowd of HELLOs before the database has given ids: each is answered when they come
    (found by the hostile campaign: 746 of 2,000 HELLOs were left to their master timeout)."""
    context: zmq.Context[Any] = zmq.Context()
    config = make_config("", tmp_path, tmp_path, ["cp311"], key_dir=None)  # plain: no ZAP here
    driver = SlaveDriver(config, context)  # no ids yet: once() has not reserved any
    hello = SlaveHello(
        timedelta(minutes=5), timedelta(seconds=5), "311", "cp311", "linux_x86_64", "t", "", "",
        "", "",
    )  # fmt: skip
    crowd = [Socket(zmq.REQ, reversed(protocols.slave_driver), context=context) for _ in range(5)]
    try:
        for sock in crowd:
            sock.connect(config.slave_queue)
            sock.send("HELLO", hello)
        time.sleep(0.5)
        driver.handle_slave(0)
        assert not driver.slaves and len(driver.hellos_waiting) == 5
        driver.add_slave_ids("OK", 1)  # the database's answer
        assert sorted(s.slave_id for s in driver.slaves.values()) == [1, 2, 3, 4, 5]
        assert all(sock.zsock.poll(5000) and sock.recv()[0] == "ACK" for sock in crowd)
    finally:
        for sock in crowd:
            sock.close()
        driver.close()
        context.destroy(linger=0)
