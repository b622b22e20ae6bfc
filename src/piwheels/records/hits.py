"""What piw-logger finds in the web server's access logs, as it travels to the Hit Counter and
the database (migration 0017), and what the pages show of it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

HIT_KINDS = ("download", "search", "project", "json")  # as the schema names them


class ClientRow(NamedTuple):
    """A client as it describes itself ("" where it says nothing)."""

    installer: str
    installer_version: str
    implementation: str
    implementation_version: str
    python: str
    os: str
    os_version: str
    distro: str
    distro_version: str
    cpu: str


class Download(NamedTuple):
    """One wheel downloaded: when, which file of which project, by which of the batch's
    clients."""

    time: datetime
    filename: str
    project: str
    client: int  # its place in HitBatch.clients


class DailyHits(NamedTuple):
    """How many hits of one kind (search, project, json) a project had on one UTC day."""

    project: str
    kind: str
    day: datetime  # the day's midnight, UTC
    hits: int


class HitBatch(NamedTuple):
    """What one part of a log held: the log (the sha256 of its first line), the bytes read
    (from *start* to *end*), the lines and those not understood, and what was found."""

    log: str
    start: int
    end: int
    lines: int
    bad_lines: int
    clients: list[ClientRow]
    downloads: list[Download]
    hits: list[DailyHits]


class Popular(NamedTuple):
    """One of the most downloaded projects, for the home page."""

    project: str
    last_30_days: int


class Downloads(NamedTuple):
    """A project's downloads (or the farm's), as the pages show them."""

    last_30_days: int = 0
    all_time: int = 0
