"""How the Slave Driver lets slaves go: when it gives up on one, and what becomes of its build.

A slave is dropped when it says BYE, breaks the protocol, or falls silent: for --slave-timeout
in general, for --busy-timeout while it builds (it says BUSY every few seconds) or while its
file's transfer stands still. A build held by a lost slave is recorded as a give-back, so a
build that kills its slave is retried after a delay and failed after a few tries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from piwheels.master_support.config import MasterConfig
from piwheels.master_support.request_pool import RequestPool
from piwheels.master_support.slaves import SlaveRecord
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.web_requests import PageRequests
from piwheels.protocols.messages import LostBuild
from piwheels.records.slaves import SlaveState


def building_yet_silent(slave: SlaveRecord, deadline: float) -> bool:
    """Whether *slave* should have said BUSY since *deadline*: it is building, and owed
    nothing (while the master works on its last message, the slave waits in silence)."""
    return slave.state == SlaveState.BUILDING and not slave.waiting and slave.last_seen < deadline


def sending_yet_silent(slave: SlaveRecord, deadline: float) -> bool:
    """Whether *slave*, sending a file, has been silent here since *deadline* (and its
    transfer not yet looked at)."""
    return (
        slave.state == SlaveState.SENDING
        and not slave.waiting
        and not slave.checking
        and slave.last_seen < deadline
    )


class LostSlaves:
    """Dropping slaves for :class:`~piwheels.master.slave_driver.SlaveDriver` (a mixin)."""

    # the Slave Driver's, used here
    config: MasterConfig
    log: logging.Logger
    db: RequestPool
    pages: PageRequests
    status: StatusReporter
    slaves: dict[bytes, SlaveRecord]
    fs: Callable[[SlaveRecord], RequestPool]
    drop_build: Callable[[SlaveRecord], None]
    end_check: Callable[[SlaveRecord], None]

    def forget(self, slave: SlaveRecord, reason: str, *, lost: bool = True) -> None:
        """Drop *slave*; a build it held is *lost* with it (or, not, carried on elsewhere)."""
        self.log.warning("slave %d (%s) dropped: %s", slave.slave_id, slave.label, reason)
        if slave.build is not None:
            if slave.sending is not None:
                self.fs(slave).ask("FORGET", slave.slave_id)
            if lost and not slave.recording and slave.check is None:
                self.log.info("build %s %s for %s is given back (slave lost)", *slave.build)
                self.record_lost(slave, reason)
        self.end_check(slave)
        self.drop_build(slave)
        self.slaves.pop(slave.address, None)
        self.status.send("GONE", slave.slave_id)

    def record_lost(self, slave: SlaveRecord, reason: str) -> None:
        """Record *slave*'s build as lost with it: a give-back, retried after a delay and
        failed after a few tries, so a build that kills its slave does not kill them all."""
        assert slave.build is not None
        started = slave.build_started if slave.build_started is not None else time.monotonic()
        took = timedelta(seconds=max(time.monotonic() - started, 0.0))
        build = slave.build

        def recorded(status: str, detail: Any) -> None:
            if status != "OK":  # it goes back to the queue at once instead
                self.log.error("cannot record the lost build %s: %s", build, detail)
            else:
                self.pages.project(build[0])

        self.db.ask("LOSTBUILD", LostBuild(slave.slave_id, *build, took, reason), recorded)

    def out_of_order(self, slave: SlaveRecord, action: str) -> None:
        self.log.error(
            "slave %d sent %s while %s (after %s): refused",
            slave.slave_id,
            action,
            slave.state,
            slave.last_reply,
        )
        self.forget(slave, "it broke the protocol")

    def expire_slaves(self) -> None:
        now = time.monotonic()
        deadline = now - self.config.slave_timeout.total_seconds()
        # A building slave reports BUSY every few seconds: its silence says it is gone (killed,
        # or its machine lost), long before the general timeout would.
        busy_deadline = now - self.config.busy_timeout.total_seconds()
        for slave in list(self.slaves.values()):
            if slave.last_seen < deadline:
                self.forget(slave, f"silent for more than {self.config.slave_timeout}")
            elif building_yet_silent(slave, busy_deadline):
                self.forget(slave, f"building, yet silent for {self.config.busy_timeout}")
            elif sending_yet_silent(slave, busy_deadline):
                # silent here while its file comes on the file queue: ask how that goes
                slave.checking = True
                self.fs(slave).ask("STALLED", slave.slave_id, partial(self.stalled, slave))

    def stalled(self, slave: SlaveRecord, status: str, idle: Any) -> None:
        """Drop a sending slave whose transfer has not moved for --busy-timeout (killed
        mid-transfer, it would hold its build until --slave-timeout)."""
        slave.checking = False
        if self.slaves.get(slave.address) is not slave or slave.state != SlaveState.SENDING:
            return
        limit = self.config.busy_timeout
        if status == "OK" and (idle is None or idle > limit.total_seconds()):
            self.forget(slave, f"sending, yet no chunk for {limit}")
