"""The messages the status watcher posts to the app: its only way into the UI.

A master with many slaves publishes SLAVE in bursts (every IDLE and BUSY of every slave, the
whole farm at once after HELLO). The watcher already folds each burst into one snapshot; the
``can_replace`` methods below let Textual drop a snapshot that a newer one in the queue makes
stale, so a UI that falls behind catches up in one step instead of replaying every update.
Events that belong in the log (a build, a slave joining or leaving) are never merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from textual.message import Message

from piwheels.records.projects import Statistics
from piwheels.records.status import BuildEvent, CheckEvent, MasterStatus, SlaveStatus


@dataclass
class Listening(Message):
    """The watcher's SUB socket is connected: now a HELLO's answer will reach us."""


@dataclass
class MasterChanged(Message):
    """MASTER arrived."""

    status: MasterStatus
    restarted: bool  # a different master than before (its start time changed)

    def can_replace(self, message: Message) -> bool:
        # A restart (which makes the app ask for the whole state again) or a change of state
        # (which the log reports) must reach the app even when a later MASTER follows it.
        return (
            isinstance(message, MasterChanged)
            and not self.restarted
            and message.status.state == self.status.state
        )


@dataclass
class QueueChanged(Message):
    """QUEUE arrived: versions waiting per ABI."""

    queue: Mapping[str, int]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueChanged)


@dataclass
class StatsChanged(Message):
    """STATS arrived: Big Brother's figures."""

    stats: Statistics

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsChanged)


@dataclass
class SlavesChanged(Message):
    """The whole table of slaves after one burst of SLAVE and GONE: a snapshot, not a delta."""

    slaves: Mapping[int, SlaveStatus]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SlavesChanged)


@dataclass
class SlaveJoined(Message):
    """A slave connected while we were watching (not one already there when we started)."""

    slave: SlaveStatus


@dataclass
class SlaveLeft(Message):
    """GONE: the master forgot a slave; ``slave`` is how we last saw it."""

    slave: SlaveStatus


@dataclass
class BuildRecorded(Message):
    """BUILD arrived."""

    event: BuildEvent


@dataclass
class CheckRecorded(Message):
    """CHECK arrived: another builder's verdict on a published build (a cross-check)."""

    event: CheckEvent


@dataclass
class BadMessage(Message):
    """Something on the status queue did not decode (a master of another version?)."""

    error: str

    def can_replace(self, message: Message) -> bool:
        # A stream of garbage shows as its latest example, not as a flood in the log.
        return isinstance(message, BadMessage)
