"""The thread behind the monitor's status queue: what each message posts, a burst folded into
one snapshot of the slaves, and a build replayed by the master posted once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fake_master import NOW, STARTED, FakeMaster, slave_record, statistics
from textual.message import Message

from piwheels import protocols
from piwheels.monitor.messages import (
    BadMessage,
    BuildRecorded,
    Listening,
    MasterChanged,
    QueueChanged,
    SlaveJoined,
    SlaveLeft,
    SlavesChanged,
    StatsChanged,
)
from piwheels.monitor.watcher import StatusWatcher
from piwheels.records.status import BuildEvent, MasterStatus

BUILD = BuildEvent(NOW, 3, "numpy", "2.1.0", "cp311", True, timedelta(minutes=4))


def slave(slave_id: int, **fields: Any) -> Any:
    """A SLAVE's data as the watcher receives it, decoded."""
    return protocols.status.send["SLAVE"].check(slave_record(slave_id, **fields), "SLAVE")


@pytest.fixture
def posted() -> list[Message]:
    return []


@pytest.fixture
def watcher(fake: FakeMaster, posted: list[Message]) -> Iterator[StatusWatcher]:
    task = StatusWatcher(fake.status_queue, posted.append, since=NOW, context=fake.context)
    yield task
    task.stop()


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_slave_seen_first_while_watching_has_joined(
    watcher: StatusWatcher, posted: list[Message]
) -> None:
    before = slave(1, first_seen=NOW - timedelta(minutes=1))  # there when the monitor started
    assert watcher.handle("SLAVE", before)
    assert posted == []
    assert watcher.handle("SLAVE", slave(2))
    assert posted == [SlaveJoined(slave(2))]
    assert watcher.handle("SLAVE", slave(2, state="idle"))  # an update: no news for the log
    assert len(posted) == 1
    assert set(watcher.slaves) == {1, 2}


def test_a_slave_gone_leaves_as_it_was_last_seen(
    watcher: StatusWatcher, posted: list[Message]
) -> None:
    watcher.handle("SLAVE", slave(2))
    posted.clear()
    assert watcher.handle("GONE", 2)
    assert posted == [SlaveLeft(slave(2))]
    assert not watcher.handle("GONE", 2)  # one it does not know: nothing to say
    assert len(posted) == 1


def test_a_build_replayed_is_posted_once(watcher: StatusWatcher, posted: list[Message]) -> None:
    for event in (BUILD, BUILD, BUILD._replace(slave_id=4), BUILD):
        assert not watcher.handle("BUILD", event)
    assert posted == [BuildRecorded(BUILD), BuildRecorded(BUILD._replace(slave_id=4))]


def test_a_restarted_master_knows_none_of_the_old_ones_slaves(
    watcher: StatusWatcher, posted: list[Message]
) -> None:
    first = MasterStatus("running", STARTED, "0.1.0")
    assert not watcher.handle("MASTER", first)
    watcher.handle("SLAVE", slave(2))
    posted.clear()
    assert not watcher.handle("MASTER", first._replace(state="paused"))
    again = first._replace(started=STARTED + timedelta(hours=1))
    assert watcher.handle("MASTER", again)  # the table changed: emptied
    assert posted == [
        MasterChanged(first._replace(state="paused"), restarted=False),
        MasterChanged(again, restarted=True),
    ]
    assert watcher.slaves == {}


def test_the_queue_and_figures_are_passed_on(watcher: StatusWatcher, posted: list[Message]) -> None:
    assert not watcher.handle("QUEUE", {"cp39": 3})
    assert not watcher.handle("STATS", statistics())
    assert posted == [QueueChanged({"cp39": 3}), StatsChanged(statistics())]


def test_a_burst_of_slaves_is_one_snapshot(
    fake: FakeMaster, watcher: StatusWatcher, posted: list[Message]
) -> None:
    watcher.start()
    wait_for(lambda: Listening() in posted)
    # a subscription reaches the PUB socket a moment after the SUB connects
    while not [m for m in posted if isinstance(m, QueueChanged)]:
        fake.publish("QUEUE", {"cp39": 1})
        time.sleep(0.05)
    for n in range(200):
        fake.publish("SLAVE", slave_record(n % 10, f"s{n % 10}"))
    fake.publish("GONE", 9)
    wait_for(lambda: any(len(m.slaves) == 9 for m in posted if isinstance(m, SlavesChanged)))
    snapshots = [m for m in posted if isinstance(m, SlavesChanged)]
    assert len(snapshots) < 20, f"{len(snapshots)} snapshots of 201 messages"
    assert set(snapshots[-1].slaves) == set(range(9))
    fake.pub.zsock.send(b"\xff not a status")
    wait_for(lambda: any(isinstance(m, BadMessage) for m in posted))
