"""The Slave Driver's picture of the build queue: what it may hand out, and what it has.

The Architect sends the head of each ABI's queue as the database last showed it. A build handed
out is *active* until its slave's result is recorded, then *finished* for a while: a picture
read before it was recorded may still list it, and it must not be built twice.
"""

from __future__ import annotations

import logging
import time

from piwheels.master_support.slaves import BuildKey
from piwheels.master_support.status import StatusReporter
from piwheels.message_codec import ProtocolError
from piwheels.transport import Socket

# A finished build may linger in a queue picture read just before it was recorded: it is not
# handed out again until a picture read after it comes (or, should none, for this long).
RECENTLY_FINISHED = 120.0


class BuildQueue:
    """The queue bookkeeping of :class:`~piwheels.master.slave_driver.SlaveDriver` (a mixin:
    its state is set up by the Slave Driver's ``__init__``)."""

    # the Slave Driver's, used here
    log: logging.Logger
    builds_queue: Socket
    status: StatusReporter
    # kept here
    queue: dict[str, list[tuple[str, str]]]  # ABI -> (package, version) to hand out, in order
    queue_lengths: dict[str, int]
    active: dict[BuildKey, int]  # build -> slave_id building it
    finished: dict[BuildKey, tuple[int, float]]  # build -> its record's id, when recorded

    def handle_queue(self) -> None:
        try:
            _, (heads, lengths, last_build) = self.builds_queue.recv()
        except ProtocolError as exc:
            self.log.error("bad queue message: %s", exc)
            return
        # A picture read after a build was recorded knows of it: if it lists the build, the
        # build was queued again since (a give-back due, a dep-wait met, an operator's retry).
        cutoff = time.monotonic() - RECENTLY_FINISHED
        self.finished = {
            key: (build_id, at)
            for key, (build_id, at) in self.finished.items()
            if at > cutoff and build_id > last_build
        }
        self.queue = {
            abi: [
                (pkg, ver)
                for pkg, ver in entries
                if (pkg, ver, abi) not in self.active and (pkg, ver, abi) not in self.finished
            ]
            for abi, entries in heads.items()
        }
        self.queue_lengths = lengths
        self.status.send("QUEUE", lengths)

    def next_build(self, abi: str) -> BuildKey | None:
        entries = self.queue.get(abi, [])
        while entries:
            package, version = entries.pop(0)
            key = (package, version, abi)
            if key not in self.active and key not in self.finished:
                return key
        return None
