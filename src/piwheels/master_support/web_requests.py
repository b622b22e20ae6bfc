"""How tasks ask for pages to be rewritten: a non-blocking PUSH to the Secretary."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import zmq

from piwheels import protocols
from piwheels.protocols import NO_DATA
from piwheels.records.projects import Statistics
from piwheels.transport import Socket

log = logging.getLogger(__name__)


class PageRequests:
    """A task's handle for asking the Secretary for pages."""

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        # a stopped Secretary must never block the task asking
        sock.zsock.setsockopt(zmq.SNDTIMEO, 0)

    @classmethod
    def connect(cls, task: Any, address: str) -> PageRequests:
        sock = task.socket(zmq.PUSH, reversed(protocols.web))
        sock.connect(address)
        return cls(sock)

    def send(self, action: str, data: Any = NO_DATA) -> None:
        try:
            self.sock.send(action, data)
        except zmq.Again:
            log.warning("the Secretary is not taking requests: %s %s dropped", action, data)

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
