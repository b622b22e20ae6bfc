"""Some of a master's tasks running outside a master, with the master's control sockets: what
the tests of one task (or of a client of one) start instead of a whole master."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from farm import make_config
from piwheels import protocols
from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import Task, tell_tasks
from piwheels.transport import Socket


class TasksAlone:
    """*tasks*, started on entry (more may be started later with :meth:`start`) and told to
    QUIT on exit, as the master tells them."""

    def __init__(self, config: MasterConfig, context: zmq.Context[Any]) -> None:
        self.context = context
        self.control = Socket(zmq.PUB, reversed(protocols.task_control), context=context)
        self.control.bind(config.task_control_queue)
        self.inbox = Socket(zmq.PULL, protocols.master_control, context=context)
        self.inbox.bind(config.master_control_queue)
        self.tasks: list[Task] = []

    def start(self, *tasks: Task) -> None:
        for task in tasks:
            task.start()
            self.tasks.append(task)

    def __enter__(self) -> TasksAlone:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # as the master stops them: in the reverse of their start order, so that no task is
        # left waiting on one already gone (a client of the Oracles for its answer)
        for task in reversed(self.tasks):
            tell_tasks(self.control, "QUIT", task.name)
            task.join(5.0)
        self.control.close()
        self.inbox.close()
        stuck = [task.name for task in self.tasks if task.is_alive()]
        assert not stuck, f"still running after QUIT: {stuck}"


def farm_alone(master_dsn: str, tmp_path: Path, abis: list[str], **overrides: Any) -> MasterConfig:
    """A configuration for tasks alone, the database's ABIs set (as piw-master sets them)."""
    db = Database(master_dsn)
    try:
        db.set_build_abis(sorted_abis(abis))
    finally:
        db.close()
    return make_config(master_dsn, tmp_path, tmp_path, abis, **overrides)
