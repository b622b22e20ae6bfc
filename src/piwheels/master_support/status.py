"""The master's status, as monitors see it.

Tasks report what changes (a slave's state, a recorded build, the statistics) to the main
thread, which publishes it on the status queue for every monitor and keeps the latest of each
kind, so that a monitor connecting late can be sent the whole state at once (on HELLO).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import cbor2

from piwheels import protocols
from piwheels.codec import Record
from piwheels.master_support.task import Outbox
from piwheels.records.status import BuildEvent, SlaveStatus
from piwheels.transport import Socket

log = logging.getLogger(__name__)
RECENT_BUILDS = 50  # how many BUILD events a late monitor is sent


def status_topics() -> frozenset[bytes]:
    """Every subscription that can match a status message: b"" (all of them), and each prefix
    of each kind's first bytes (its array's head and its name, as message_codec.encode writes it).

    A monitor may subscribe to these only. libzmq keeps subscriptions in a tree of a node per
    byte, and keeps the nodes after the subscriber leaves: 12,000 random short subscriptions
    held ~60 MB for good."""
    topics = {b""}
    for action, spec in protocols.status.send.items():
        fields = len(spec.fields) if isinstance(spec, Record) else 1
        head = cbor2.dumps(action if spec is None else [action, *[None] * fields])
        name_ends = head.index(action.encode()) + len(action)
        topics.update(head[:end] for end in range(1, name_ends + 1))
    return frozenset(topics)


class StatusReporter(Outbox):
    """A task's handle for reporting status to the main thread; never blocks the task."""

    PROTOCOL = protocols.status
    LEVEL = logging.DEBUG
    DROPPED = "status %s dropped: the main thread is not listening"


class StatusBoard:
    """The latest state of everything, republished in full on request."""

    def __init__(self, publisher: Socket) -> None:
        self.publisher = publisher
        self.latest: dict[str, Any] = {}  # MASTER, QUEUE, STATS
        self.slaves: dict[int, SlaveStatus] = {}
        self.builds: deque[BuildEvent] = deque(maxlen=RECENT_BUILDS)

    def publish(self, action: str, data: Any) -> None:
        if action == "SLAVE":
            self.slaves[data.slave_id] = data
        elif action == "GONE":
            self.slaves.pop(data, None)
        elif action == "BUILD":
            self.builds.append(data)
        else:
            self.latest[action] = data
        self.publisher.send(action, data)

    def replay(self) -> None:
        """Send everything again, for a monitor that has just connected."""
        for action, data in self.latest.items():
            self.publisher.send(action, data)
        for data in self.slaves.values():
            self.publisher.send("SLAVE", data)
        for data in self.builds:
            self.publisher.send("BUILD", data)
