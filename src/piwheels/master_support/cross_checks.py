"""Cross-checks (#19): another builder builds again a share of the builds, and the hashes of
the wheels it makes must be the published ones.

The database decides which builds are checked as it records them (the first builds of every
builder key, then a random share: migration 0016) and keeps the verdicts. The Slave Driver
holds the open checks and gives each to an idle slave of its ABI whose key is neither the
builder's nor a past checker's. To that slave it is a build like any other, so a dishonest one
cannot tell it is being checked; its BUILT is compared, never published, and it is told DONE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from piwheels.builder_keys import fingerprint
from piwheels.master_support.build_collection import Reply, Step
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.request_pool import Answer, RequestPool
from piwheels.master_support.slaves import BuildKey, SlaveRecord
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.web_requests import PageRequests
from piwheels.protocols import NO_DATA
from piwheels.protocols.messages import Withhold
from piwheels.records.builds import BuildResult, CrossCheck, CrossCheckReport
from piwheels.records.status import CheckEvent

OPEN_CHECKS = 100  # checks the Slave Driver holds at once (the rest wait in the database)


class CrossChecks:
    """The cross-check bookkeeping of :class:`~piwheels.master.slave_driver.SlaveDriver` (a
    mixin: its state is set up by the Slave Driver's ``__init__``)."""

    # the Slave Driver's, used here
    config: MasterConfig
    log: logging.Logger
    db: RequestPool
    fs_lanes: list[RequestPool]
    pages: PageRequests
    status: StatusReporter
    active: dict[BuildKey, int]
    later: Callable[[SlaveRecord, Step], Answer]

    # kept here
    open_checks: list[CrossCheck]
    checking: dict[int, int]  # build id -> the slave checking it now

    def refresh_checks(self) -> None:
        self.db.ask("OPENCHECKS", OPEN_CHECKS, self._have_checks)

    def _have_checks(self, status: str, checks: Any) -> None:
        if status != "OK":
            self.log.error("cannot read the open cross-checks: %s", checks)
            return
        self.open_checks = [c for c in checks if c.build_id not in self.checking]

    def next_check(self, slave: SlaveRecord) -> CrossCheck | None:
        """A check *slave* may make: of its ABI, built by another key than its own (only
        builders with keys check, and are checked)."""
        if not slave.key or not self.open_checks:
            return None
        key = fingerprint(slave.key.encode("ascii"))
        for check in self.open_checks:
            build = (check.package, check.version, check.abi_tag)
            if (
                check.abi_tag == slave.abi_tag
                and key not in check.excluded
                and check.build_id not in self.checking
                and build not in self.active
            ):
                self.open_checks.remove(check)
                return check
        return None

    def start_check(self, slave: SlaveRecord, check: CrossCheck) -> Reply:
        build = (check.package, check.version, check.abi_tag)
        slave.start_build(build)
        slave.check = check.build_id
        self.active[build] = slave.slave_id
        self.checking[check.build_id] = slave.slave_id
        self.log.info(
            "slave %d: build %s %s for %s (a cross-check of build %d)",
            slave.slave_id,
            *build,
            check.build_id,
        )
        return "BUILD", build[:2]

    def checked(self, slave: SlaveRecord, result: BuildResult) -> None:
        """*slave*'s BUILT for the check it was given: compared, not published."""
        assert slave.check is not None
        assert slave.build is not None
        report = CrossCheckReport(
            slave.check,
            fingerprint(slave.key.encode("ascii")),
            result.status and bool(result.files),
            {file.filename: file.filehash for file in result.files},
        )
        step = partial(self._verdict, slave, slave.check, slave.build)
        self.db.ask("CHECKED", report, self.later(slave, step))

    def end_check(self, slave: SlaveRecord) -> None:
        """Forget *slave*'s check (done, or the slave gone): the database still lists an
        unfinished one, which the next refresh brings back."""
        if slave.check is not None:
            self.checking.pop(slave.check, None)
            slave.check = None

    def _verdict(
        self, slave: SlaveRecord, build_id: int, build: BuildKey, status: str, verdict: Any
    ) -> Reply:
        self.end_check(slave)
        self.active.pop(build, None)
        slave.end_build()
        package, version, abi = build
        if status == "OK":  # the monitors show every verdict in their log
            event = CheckEvent(datetime.now(UTC), build_id, *build, slave.slave_id, verdict)
            self.status.send("CHECK", event)
        if status != "OK":
            self.log.error("cannot record the cross-check of build %d: %s", build_id, verdict)
        elif verdict == "disagreed":
            self.log.error(
                "cross-check of build %d (%s %s for %s): slave %d (%s) made other wheels than "
                "the published ones",
                build_id,
                package,
                version,
                abi,
                slave.slave_id,
                slave.label,
            )
            if self.config.withhold_disagreements:
                self.db.ask("WITHHOLD", build_id, partial(self._withhold, package))
                return "DONE", NO_DATA  # its pages are asked for once its files are out
        else:
            self.log.info(
                "cross-check of build %d by slave %d: %s", build_id, slave.slave_id, verdict
            )
        self.pages.project(package)  # the verdict is shown there, and in the provenance
        return "DONE", NO_DATA

    def _withhold(self, package: str, status: str, filenames: Any) -> None:
        """Move the files the database now withholds out of the served tree."""
        if status != "OK":
            self.log.error("cannot withhold the files of %s: %s", package, filenames)
            return

        def moved(status: str, detail: Any) -> None:
            if status != "OK":
                self.log.error("cannot withhold %s: %s", ", ".join(filenames), detail)
            self.pages.project(package)

        self.log.warning("withheld until an operator decides: %s", ", ".join(filenames))
        self.fs_lanes[0].ask("WITHHOLD", Withhold(package, filenames), moved)
