"""The Slave Driver's slave ids: reserved in the database a block at a time, given one per HELLO.

Ids are the database's, never given twice (migration 0008), so a build's built_by names one
slave even across restarts of the master. A HELLO that comes when none is left waits for the
next block rather than go unanswered.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.request_pool import RequestPool
from piwheels.master_support.slaves import Connection
from piwheels.records.slaves import SlaveHello

SLAVE_ID_BLOCK = 1000  # as reserve_slave_ids() reserves them (migration 0008)
HELLOS_WAITING = 10_000  # HELLOs held while the next block of ids is being reserved


class SlaveIds:
    """The slave-id reservation of :class:`~piwheels.master.slave_driver.SlaveDriver` (a mixin:
    its state is set up by the Slave Driver's ``__init__``)."""

    # the Slave Driver's, used here
    config: MasterConfig
    context: zmq.Context[Any]
    log: logging.Logger
    db: RequestPool
    greet: Callable[[bytes, SlaveHello, Connection], None]
    # kept here
    slave_ids: deque[int]  # reserved in the database, not yet given
    reserving: bool  # whether the next block has been asked for
    hellos_waiting: dict[bytes, tuple[SlaveHello, Connection]]  # address -> HELLO, whence

    def once(self) -> None:
        db = DbClient(self.config.oracle_queue, self.context)
        try:
            self.add_slave_ids("OK", db.reserve_slave_ids())
        except DatabaseError as exc:
            self.log.error("cannot reserve slave ids (asking again at the next HELLO): %s", exc)
        finally:
            db.close()

    def add_slave_ids(self, status: str, first: Any) -> None:
        self.reserving = False
        if status != "OK":
            self.log.error("cannot reserve slave ids: %s", first)
            return
        self.slave_ids.extend(range(first, first + SLAVE_ID_BLOCK))
        waiting, self.hellos_waiting = self.hellos_waiting, {}
        for address, (hello, connection) in waiting.items():
            self.greet(address, hello, connection)

    def take_slave_id(self) -> int | None:
        """The next slave id, reserving more before they run out; None if there are none."""
        if len(self.slave_ids) < SLAVE_ID_BLOCK // 2 and not self.reserving:
            self.reserving = True
            self.db.ask("SLAVEIDS", then=self.add_slave_ids)
        return self.slave_ids.popleft() if self.slave_ids else None

    def wait_for_slave_id(self, address: bytes, hello: SlaveHello, connection: Connection) -> None:
        """Hold a HELLO until the ids come (or, if too many wait, leave it unanswered)."""
        if len(self.hellos_waiting) < HELLOS_WAITING:
            self.hellos_waiting[address] = (hello, connection)
