"""How tasks ask for pages to be rewritten: a non-blocking PUSH to the Secretary."""

from __future__ import annotations

import os
from pathlib import Path

from piwheels import protocols
from piwheels.master_support.task import Outbox
from piwheels.records.projects import Statistics


class PageRequests(Outbox):
    """A task's handle for asking the Secretary for pages (a stopped Secretary must never
    block the task asking)."""

    PROTOCOL = reversed(protocols.web)
    DROPPED = "the Secretary is not taking requests: %s dropped"

    def project(self, package: str, *, index: bool = True) -> None:
        """The project's page, and its index page too unless *index* is False."""
        self.send("BOTH" if index else "PROJECT", package)


def with_output_disk(figures: Statistics, output_path: Path) -> Statistics:
    """The database's figures with the output disk's space, for the home page (OSError if the
    disk cannot be measured)."""
    disk = os.statvfs(output_path)
    return figures._replace(
        disk_free=disk.f_bavail * disk.f_frsize, disk_total=disk.f_blocks * disk.f_frsize
    )
