"""The Architect: the head of each ABI's queue pushed to the Slave Driver every few seconds,
give-backs that are due put back first, and nothing pushed while paused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import wait_for
from master.tasks_alone import TasksAlone, farm_alone
from piwheels import protocols
from piwheels.db.builds import GiveBack
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectVersion
from piwheels.master.seraph import Seraph
from piwheels.master.the_architect import TheArchitect
from piwheels.master.the_oracle import TheOracle
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import tell_tasks
from piwheels.records.builds import QueueSnapshot
from piwheels.transport import Socket

RELEASED = ProjectVersion("1.0", None, None, True, False, "")


@pytest.fixture
def config(master_dsn: str, tmp_path: Path) -> MasterConfig:
    return farm_alone(
        master_dsn, tmp_path, ["cp39", "cp311"], queue_interval=0.2, give_back_delay=timedelta(0)
    )


@pytest.fixture
def db(config: MasterConfig) -> Iterator[Database]:
    # builds lost here are given back as the Oracles would record them: due at once
    database = Database(config.dsn, give_back=GiveBack(delay=config.give_back_delay))
    yield database
    database.close()


@pytest.fixture
def driver(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[Socket]:
    """The Slave Driver's end of the builds queue."""
    with Socket(zmq.PULL, reversed(protocols.architect), context=context) as sock:
        sock.bind(config.builds_queue)
        yield sock


@pytest.fixture
def tasks(config: MasterConfig, context: zmq.Context[Any], driver: Socket) -> Iterator[TasksAlone]:
    with TasksAlone(config, context) as alone:
        alone.start(Seraph(config, context), TheOracle(config, context))
        alone.start(TheArchitect(config, context))
        yield alone


def next_picture(driver: Socket, timeout: float = 5.0) -> QueueSnapshot:
    assert driver.poll(timeout * 1000), "no queue from the Architect"
    action, snapshot = driver.recv()
    assert action == "QUEUE"
    return snapshot


def test_the_queue_is_pushed_as_it_stands(db: Database, driver: Socket, tasks: TasksAlone) -> None:
    first = next_picture(driver)
    assert (first.heads, first.last_build) == ({"cp39": [], "cp311": []}, 0)
    db.set_project("foo", "foo", 1, "", "", [RELEASED])
    db.add_by_hand("bar", "2.0", "")

    def has_both() -> QueueSnapshot | None:
        snapshot = next_picture(driver)
        return snapshot if len(snapshot.heads["cp39"]) == 2 else None

    snapshot = wait_for(has_both, what="both versions in the queue")
    assert sorted(snapshot.heads["cp39"]) == [("bar", "2.0"), ("foo", "1.0")]
    assert snapshot.lengths["cp39"] == 2
    assert snapshot.heads["cp311"] == []


def test_a_give_back_that_is_due_is_queued_again_first(
    db: Database, driver: Socket, tasks: TasksAlone, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    db.add_by_hand("foo", "1.0", "")
    build_id = db.log_lost_build(1, "foo", "1.0", "cp39", timedelta(seconds=9), "silent")
    wait_for(lambda: "1 given-back builds are due" in caplog.text, what="the give-back")
    wait_for(
        lambda: next_picture(driver).heads["cp39"] == [("foo", "1.0")],
        what="the version back in the queue",
    )
    requeued = db.conn.execute(
        "SELECT requeued_at IS NOT NULL FROM builds WHERE build_id = %s", (build_id,)
    ).fetchone()
    assert requeued == (True,)


def test_nothing_is_pushed_while_paused(db: Database, driver: Socket, tasks: TasksAlone) -> None:
    next_picture(driver)
    tell_tasks(tasks.control, "PAUSE", "Architect")
    [architect] = [task for task in tasks.tasks if isinstance(task, TheArchitect)]
    wait_for(lambda: architect.paused, what="the pause")
    while driver.poll(300):  # what was sent before the pause
        driver.recv()
    assert not driver.poll(1000)
    tell_tasks(tasks.control, "RESUME", "Architect")
    next_picture(driver)
