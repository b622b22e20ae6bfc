"""What the status queue carries: the master, its slaves and its builds, as monitors see them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from piwheels.records.builds import PackageVersion
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
    build: PackageVersion | None  # under way
    build_started: datetime | None
    first_seen: datetime
    last_seen: datetime
    stats: SlaveStats | None  # the resources it last reported
    sleep_requested: bool
    # who it is: the label its key was trusted under (piw-trust add --label), else the key's
    # fingerprint; "" over a plain queue (the original fleet's), None from an older master
    builder: str | None = None


class CheckEvent(NamedTuple):
    """CHECK: another builder's verdict on a published build (a cross-check)."""

    when: datetime
    build_id: int  # the build checked
    package: str
    version: str
    abi_tag: str
    slave_id: int  # the checker
    verdict: str  # as migration 0016 names them: agreed, disagreed, unreproducible ...


class BuildEvent(NamedTuple):
    """BUILD: a build the master has just recorded."""

    when: datetime
    slave_id: int
    package: str
    version: str
    abi_tag: str
    succeeded: bool
    duration: timedelta
