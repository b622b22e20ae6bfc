"""The Architect: keeps the Slave Driver's picture of the build queue fresh.

The queue itself lives in the database and is updated in the same transaction that records a
version or a build (see ``queue_version`` in the schema), so this task only reads the head of
each ABI's queue every few seconds and pushes it to the Slave Driver, which hands builds out in
that order: an operator's priority first, then each project's newest release, then the backlog
interleaved across projects (see ``Database.get_queue`` and migrations/0010_queue_priority.sql).
"""

from __future__ import annotations

from typing import Any

import zmq

from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.task import Task


class TheArchitect(Task):
    name = "Architect"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.builds = self.socket(zmq.PUSH, protocols.architect)
        # a queue picture superseded by a newer one is worthless: never let them pile up
        self.builds.zsock.setsockopt(zmq.SNDHWM, 2)
        self.builds.connect(config.builds_queue)
        self.every(config.queue_interval, self.update_queue)

    def once(self) -> None:
        self.update_queue()

    def update_queue(self) -> None:
        if self.paused:
            return
        try:
            # give-backs whose delay has passed go back to the queue before it is read
            requeued = self.db.requeue_given_back()
            if requeued:
                self.log.info("%d given-back builds are due: back to the queue", len(requeued))
            snapshot = self.db.get_queue(self.config.queue_head)
        except DatabaseError as exc:
            self.log.error("cannot read the build queue: %s", exc)
            return
        try:
            self.builds.send(
                "QUEUE", (snapshot.heads, snapshot.lengths, snapshot.last_build), flags=zmq.NOBLOCK
            )
        except zmq.Again:
            self.log.debug("the Slave Driver has not taken the last queue yet")
        self.log.debug("queue lengths: %s", snapshot.lengths)

    def close(self) -> None:
        self.db.close()
        super().close()
