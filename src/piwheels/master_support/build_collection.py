"""What follows a slave's BUILT: its files fetched and the build recorded, or the build abandoned.

Files already published are not fetched again; the rest come one at a time through the File
Juggler (EXPECT, the slave's SEND, VERIFY), each tried up to MAX_SEND_ATTEMPTS times. Once
every file is verified on disk an Oracle records the build (LOGBUILD). A build abandoned on the
way goes back to the queue, and files fetched for it that the database does not list are
deleted, so nothing stays in the index without a build on record.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from piwheels.master_support.config import MasterConfig
from piwheels.master_support.request_pool import Answer, RequestPool
from piwheels.master_support.slaves import BuildKey, SlaveRecord
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.web_requests import PageRequests
from piwheels.protocols import NO_DATA
from piwheels.protocols.messages import BuildReport, Discard, Expect
from piwheels.records.builds import BuildResult
from piwheels.records.slaves import SlaveState
from piwheels.records.status import BuildEvent

MAX_SEND_ATTEMPTS = 3

Reply = tuple[str, Any]  # what a slave is sent: an action of the slave protocol, its data
Step = Callable[[str, Any], Reply | None]  # an answer to a request, made into a slave's reply


class BuildCollection:
    """Fetching and recording builds for :class:`~piwheels.master.slave_driver.SlaveDriver`
    (a mixin)."""

    # the Slave Driver's, used here
    config: MasterConfig
    log: logging.Logger
    db: RequestPool
    fs_lanes: list[RequestPool]
    pages: PageRequests
    status: StatusReporter
    slaves: dict[bytes, SlaveRecord]
    active: dict[BuildKey, int]
    finished: dict[BuildKey, tuple[int, float]]
    later: Callable[[SlaveRecord, Step], Answer]
    reply: Callable[[SlaveRecord, Reply], None]

    # -- steps taken when an answer comes back -------------------------------------------------

    def plan(self, slave: SlaveRecord, status: str, published: Any) -> Reply | None:
        """Given the hashes of those of its files already published, fetch the rest."""
        if status != "OK":
            self.log.error("cannot check published files: %s", published)
            return self.abandon(slave, "the database is unavailable")
        slave.result, to_send = slave.plan_transfers(dict(published))
        for filename in published:
            self.log.warning("slave %d: %s is already published", slave.slave_id, filename)
        if to_send and not self.disk_has_room(sum(f.filesize for f in to_send)):
            return self.abandon(slave, "the output disk is nearly full")
        if to_send:
            self.next_transfer(slave)
            return None
        self.record(slave)
        return None

    def expected(self, slave: SlaveRecord, status: str, detail: Any) -> Reply:
        assert slave.sending is not None
        if status != "OK":
            return self.abandon(slave, f"cannot receive {slave.sending.filename}: {detail}")
        return "SEND", slave.sending.filename

    def verified(self, slave: SlaveRecord, status: str, detail: Any) -> Reply | None:
        assert slave.sending is not None
        if status == "OK":
            self.log.info("slave %d: %s verified", slave.slave_id, slave.sending.filename)
            slave.fetched.append(slave.sending.filename)
            slave.to_send.pop(0)
            slave.attempts = 0
            if slave.to_send:
                self.next_transfer(slave)
            else:
                self.record(slave)
            return None
        self.log.warning("slave %d: %s failed: %s", slave.slave_id, slave.sending.filename, detail)
        if slave.attempts >= MAX_SEND_ATTEMPTS or detail.kind == "no-room":
            return self.abandon(slave, f"transfer of {slave.sending.filename} failed: {detail}")
        self.next_transfer(slave)
        return None

    # -- steps that ask, the slave's reply coming with the answer --------------------------------

    def next_transfer(self, slave: SlaveRecord) -> None:
        file = slave.to_send[0]
        slave.state, slave.sending = SlaveState.SENDING, file
        slave.attempts += 1
        assert slave.build is not None
        expect = Expect(
            slave.slave_id, slave.build[0], file, slave.routing_id, slave.peer, slave.key
        )
        self.fs(slave).ask("EXPECT", expect, self.later(slave, partial(self.expected, slave)))

    def record(self, slave: SlaveRecord) -> None:
        assert slave.build is not None
        assert slave.result is not None
        build, result = slave.build, slave.result
        slave.waiting = slave.recording = True
        # From here the request decides the fate of the fetched files, not the slave.
        fetched, slave.fetched = slave.fetched, []
        self.db.ask(
            "LOGBUILD",
            BuildReport(slave.slave_id, *build, result, slave.origin()),
            partial(self.recorded, slave, build, result, fetched),
        )

    def recorded(
        self,
        slave: SlaveRecord,
        build: BuildKey,
        result: BuildResult,
        fetched: list[str],
        status: str,
        detail: Any,
    ) -> None:
        # The build is recorded (or not) whatever became of the slave while the Oracle worked.
        current = self.slaves.get(slave.address) is slave and slave.build == build
        if status != "OK":
            self.discard(build[0], fetched)
            if current:
                self.reply(slave, self.abandon(slave, f"cannot record the build: {detail}"))
            else:
                self.log.error("cannot record %s (its slave is gone): %s", build, detail)
            return
        package, version, abi = build
        build_id = int(detail)
        # A build the database refused as it was is recorded failed, without its files (see
        # Database.log_build): those fetched and not listed must not stay in the index.
        self.discard(package, fetched)
        self.log.info(
            "slave %d: recorded build %d of %s %s for %s (%s)",
            slave.slave_id,
            build_id,
            package,
            version,
            abi,
            "success" if result.status else "failure",
        )
        self.active.pop(build, None)
        self.finished[build] = (build_id, time.monotonic())
        self.pages.project(package)
        event = BuildEvent(
            datetime.now(UTC), slave.slave_id, package, version, abi, result.status, result.duration
        )
        self.status.send("BUILD", event)
        if current:
            slave.end_build()
            self.reply(slave, ("DONE", NO_DATA))

    # -- ending a build unrecorded ---------------------------------------------------------------

    def abandon(self, slave: SlaveRecord, reason: str) -> Reply:
        """End the build without recording it: it goes back to the queue."""
        self.log.error("slave %d: abandoned %s: %s", slave.slave_id, slave.build, reason)
        if slave.sending is not None:
            self.fs(slave).ask("FORGET", slave.slave_id)
        self.drop_build(slave)
        return "DONE", NO_DATA

    def drop_build(self, slave: SlaveRecord) -> None:
        """End *slave*'s build unrecorded: the next queue refresh brings it back."""
        if slave.build is not None:
            self.active.pop(slave.build, None)
            self.discard(slave.build[0], slave.fetched)
        slave.end_build()

    def discard(self, package: str, filenames: list[str]) -> None:
        """Have the File Juggler delete files fetched for a build that was not recorded,
        unless the database lists them (another build of the same wheel may have been)."""
        if not filenames:
            return

        def unlisted(status: str, published: Any) -> None:
            if status != "OK":
                self.log.error("%s left on disk: cannot tell if published", ", ".join(filenames))
                return
            gone = [name for name in filenames if name not in published]
            if gone:
                self.fs_lanes[0].ask("DISCARD", Discard(package, gone))

        self.db.ask("GETHASHES", filenames, unlisted)

    # -- where the files go ----------------------------------------------------------------------

    def fs(self, slave: SlaveRecord) -> RequestPool:
        """*slave*'s lane to the File Juggler: always the same one, so the File Juggler sees a
        slave's FORGET before its next EXPECT."""
        return self.fs_lanes[slave.slave_id % len(self.fs_lanes)]

    def disk_has_room(self, needed: int = 0) -> bool:
        try:
            stat = os.statvfs(self.config.output_path)
        except OSError as exc:
            self.log.error("cannot check the output disk: %s", exc)
            return False
        return stat.f_bavail * stat.f_frsize - needed >= self.config.min_free_space
