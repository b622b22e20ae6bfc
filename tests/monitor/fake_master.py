"""The master's two monitor-facing sockets, played by a test: PUB status, PULL commands.

Real ZeroMQ on ipc paths in a temporary directory, the real protocols; only the farm behind
them is made up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import zmq

from piwheels import protocols
from piwheels.protocols import NO_DATA
from piwheels.records.hits import Downloads, Popular
from piwheels.records.projects import Statistics
from piwheels.records.slaves import SlaveStats
from piwheels.transport import Socket

NOW = datetime(2026, 11, 22, 19, 30, 0, tzinfo=UTC)
STARTED = NOW - timedelta(hours=2, minutes=14, seconds=5)


def slave_record(
    slave_id: int,
    label: str = "pi4-a",
    abi: str = "cp311",
    state: str = "building",
    build: tuple[str, str] | None = ("numpy", "2.1.0"),
    *,
    load: float = 1.5,
    temp: float = 52.0,
    sleep_requested: bool = False,
    first_seen: datetime = NOW,
    swap: tuple[int, int] | None = None,
    builder: str | None = None,
) -> list[Any]:
    """A SLAVE record as the master sends it; *swap* (total, free) where the slave says; with
    *builder*, who the master says it is (a master older than that says nothing)."""
    stats = SlaveStats(NOW - timedelta(seconds=3), 32 << 30, 20 << 30, 8 << 30, 5 << 30, load, temp)
    if swap is not None:
        stats = stats._replace(swap_total=swap[0], swap_free=swap[1])
    return [
        slave_id,
        label,
        abi,
        "linux_aarch64",
        state,
        None if build is None else list(build),
        None if build is None else NOW - timedelta(minutes=3, seconds=20),
        first_seen,
        NOW - timedelta(seconds=2),
        list(stats),
        sleep_requested,
        *([] if builder is None else [builder]),
    ]


def statistics(builds_last_hour: int = 12, disk_free: int = 40 << 30) -> Statistics:
    return Statistics(
        packages=1234,
        versions=5678,
        builds=9000,
        builds_succeeded=8100,
        builds_last_hour=builds_last_hour,
        failures_last_hour=2,
        files=8000,
        bytes=3 << 30,
        queue={"cp39": 3, "cp311": 17},
        queue_priority={"cp39": 0, "cp311": 1},
        queue_newest={"cp39": 3, "cp311": 10},
        failures_by_cause={"cp311": {"missing-header": 2}},
        disk_free=disk_free,
        disk_total=100 << 30,
        updated=NOW,
        downloads=Downloads(4321, 98765),
        popular=[Popular("numpy", 2000), Popular("pillow", 900)],
    )


class FakeMaster:
    """Binds where a master would; publishes what a test says and collects the commands."""

    def __init__(self, work: Path) -> None:
        self.status_queue = f"ipc://{work}/status"
        self.control_queue = f"ipc://{work}/control"
        self.context: zmq.Context[Any] = zmq.Context()
        self.pub = Socket(zmq.PUB, protocols.status, context=self.context).bind(self.status_queue)
        self.pull = Socket(zmq.PULL, protocols.master_commands, context=self.context).bind(
            self.control_queue
        )
        self.received: list[tuple[str, Any]] = []
        self.started = STARTED
        self.state = "running"

    def close(self) -> None:
        self.pub.close()
        self.pull.close()
        self.context.term()

    def publish(self, action: str, data: Any = NO_DATA) -> None:
        self.pub.send(action, data)

    def publish_state(self, *slaves: list[Any]) -> None:
        """What a master publishes in answer to HELLO."""
        self.publish("MASTER", [self.state, self.started, "0.1.0"])
        self.publish("QUEUE", {"cp39": 3, "cp311": 17})
        self.publish("STATS", statistics())
        for slave in slaves:
            self.publish("SLAVE", slave)

    def commands(self) -> list[tuple[str, Any]]:
        """What arrived since the last call (NO_DATA for bare ones), all kept in ``received``."""
        new = []
        while self.pull.poll(0):
            new.append(self.pull.recv())
        self.received.extend(new)
        return new
