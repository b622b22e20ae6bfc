"""What a slave says about itself (HELLO, IDLE, BUSY), and what the master knows of it."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import NamedTuple


class SlaveHello(NamedTuple):
    """What a slave says about itself in HELLO."""

    build_timeout: timedelta
    master_timeout: timedelta
    py_version_tag: str
    abi_tag: str
    platform_tag: str
    label: str
    os_name: str
    os_version: str
    board_revision: str
    board_serial: str


class SlaveStats(NamedTuple):
    """The resources a slave reports with every IDLE and BUSY."""

    timestamp: datetime
    disk_total: int
    disk_free: int
    mem_total: int
    mem_free: int
    load_avg: float
    cpu_temp: float
    # Not in the spec's IDLE: the original piwheels' slaves report swap (between memory and
    # load), ours after the spec's fields. None from a slave that does not say.
    swap_total: int | None = None
    swap_free: int | None = None


class SlaveState(enum.StrEnum):
    """What the Slave Driver last knew a slave to be doing."""

    HELLO = "hello"
    IDLE = "idle"
    SLEEPING = "sleeping"
    BUILDING = "building"
    SENDING = "sending"
    DYING = "dying"
