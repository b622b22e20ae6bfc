"""What the master's status messages decode into, and the words and numbers the monitor shows.

:data:`piwheels.protocols.status` declares MASTER, SLAVE and BUILD as plain records; the watcher
turns each into one of these named types so no widget indexes an 11-field tuple by position.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from piwheels.records.slaves import SlaveStats


class MasterStatus(NamedTuple):
    """MASTER: what the master is doing."""

    state: str  # "running" or "paused"
    started: datetime
    version: str


class SlaveStatus(NamedTuple):
    """SLAVE: one slave as the Slave Driver knows it."""

    slave_id: int
    label: str
    abi_tag: str
    platform_tag: str
    state: str  # a SlaveState value
    build: tuple[str, str] | None  # (package, version) under way
    build_started: datetime | None
    first_seen: datetime
    last_seen: datetime
    stats: SlaveStats | None  # the resources it last reported
    sleep_requested: bool

    @classmethod
    def decode(cls, data: Any) -> SlaveStatus:
        """From the record :mod:`piwheels.transport` has already checked against SLAVE_STATUS."""
        status = cls(*data)
        build = None if status.build is None else (str(status.build[0]), str(status.build[1]))
        stats = None if status.stats is None else SlaveStats(*status.stats)
        return status._replace(build=build, stats=stats)


class BuildEvent(NamedTuple):
    """BUILD: a build the master has just recorded."""

    when: datetime
    slave_id: int
    package: str
    version: str
    abi_tag: str
    succeeded: bool
    duration: timedelta


def human_size(size: int | None) -> str:
    """A byte count the way ``df -h`` shows it.

    >>> human_size(5 << 30), human_size(1536), human_size(None)
    ('5.0G', '1.5K', '-')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(delta: timedelta | None) -> str:
    """A duration to the second, hours and minutes shown only when there are some.

    Negative durations (the master's clock a little ahead of ours) show as zero.

    >>> human_duration(timedelta(seconds=3725)), human_duration(timedelta(seconds=42))
    ('1h02m05s', '42s')
    """
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
