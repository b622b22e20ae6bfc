"""Cloud Gazer: follows PyPI and records new packages, versions, yanks and removals.

Following all of PyPI, it diffs the simple index's per-project serials against the serials it
recorded, so a restart resumes where it left off and only changed projects are fetched again.
Following an allow-list (a small farm, a demo), it asks PyPI about just those projects.
Fetches run on a few threads (they are network-bound); the database writes stay in the task.

Cloud Gazer is the only writer of the packages' serials, so it reads them from the database once
(~1M pairs through an Oracle: seconds of the master's CPU) and keeps its copy current as it
records and removes projects, rather than reading them all again at every look at PyPI.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels.db.database import ProjectVersion
from piwheels.master.config import MasterConfig
from piwheels.master.db_client import DatabaseError, DbClient
from piwheels.master.task import Task
from piwheels.master.web_requests import PageRequests
from piwheels.pypi import ProjectInfo, ProjectNotFound, PyPIClient, PyPIError

FETCH_THREADS = 8
BATCH = 64  # projects recorded per turn of the loop, so control messages are never kept waiting


class CloudGazer(Task):
    name = "Cloud Gazer"

    def __init__(
        self,
        config: MasterConfig,
        context: zmq.Context[Any] | None = None,
        *,
        pypi: PyPIClient | None = None,
    ) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.pages = PageRequests.connect(self, config.web_queue)
        self.pypi = pypi or PyPIClient(config.pypi_simple, config.pypi_json)
        self.allow_list = sorted({canonicalize_name(name) for name in config.packages})
        self.known: dict[str, int] = {}  # package -> the serial recorded (-1: removed)
        self.loaded = False  # whether `known` holds the database's serials yet
        # (project, the serial PyPI listed it with) known to have changed, not yet recorded
        self.pending: list[tuple[str, int | None]] = []
        self.pending_serial: int | None = None  # PyPI's serial once `pending` is done
        self.fetcher = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="gazer-fetch")
        self.every(config.pypi_interval, self.discover)
        self.every(0.1, self.record_batch)

    def once(self) -> None:
        self.discover()

    def discover(self) -> None:
        """Find which projects changed since we last looked."""
        if self.paused or self.pending:
            return
        started = time.monotonic()
        try:
            if not self.loaded:
                # once: from here on every change to a serial is one this task made
                self.known = self.db.get_package_serials()
                self.loaded = True
            if self.allow_list:
                # a handful of projects: ask about each rather than download PyPI's whole list
                self.pending = [(name, None) for name in self.allow_list]
                return
            changes = self.pypi.changed_projects(self.known)
        except (PyPIError, DatabaseError) as exc:
            self.log.warning("cannot look for changes now (will retry): %s", exc)
            return
        removed = [name for name in changes.removed if self.known[name] >= 0]
        self.pending = [(p.canonical_name, p.serial) for p in changes.changed]
        self.pending += [(name, None) for name in removed]
        self.pending_serial = changes.serial
        took = time.monotonic() - started
        if self.pending:
            self.log.info(
                "%d projects changed and %d removed on PyPI (serial %d); looked in %.1fs",
                len(changes.changed),
                len(removed),
                changes.serial,
                took,
            )
        else:
            self.log.debug(
                "no changes among %d projects on PyPI (serial %d); looked in %.1fs",
                len(self.known),
                changes.serial,
                took,
            )

    def record_batch(self) -> None:
        """Fetch and record the next few changed projects."""
        if self.paused or not self.pending:
            return
        batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
        for (name, serial), info in zip(batch, self.fetcher.map(self._fetch, batch), strict=True):
            try:
                if info is None:
                    if self.known.get(name, -1) >= 0:
                        self.log.info("%s was removed from PyPI", name)
                        self.db.remove_project(name)
                        self.known[name] = -1
                        self.pages.project(name)
                elif isinstance(info, ProjectInfo) and info.serial != self.known.get(name):
                    self.record(info)
            except DatabaseError as exc:
                self.log.error("cannot record %s (will retry): %s", name, exc)
                self.pending.append((name, serial))
        if not self.pending and self.pending_serial is not None:
            try:
                self.db.set_pypi_serial(self.pending_serial)
                self.log.info("caught up with PyPI at serial %d", self.pending_serial)
            except DatabaseError as exc:
                self.log.error("cannot record PyPI serial: %s", exc)
            self.pending_serial = None

    def _fetch(self, entry: tuple[str, int | None]) -> ProjectInfo | Exception | None:
        """The project's details, None when PyPI no longer has it, or the error to log."""
        name, serial = entry
        try:
            return self.pypi.project(name, min_serial=serial)
        except ProjectNotFound as exc:
            if serial is not None:
                # the index lists it, so this 404 is a stale cache (e.g. a brand-new project)
                self.log.warning("%s: %s (will retry)", name, exc)
                return exc
            return None
        except PyPIError as exc:
            self.log.warning("cannot fetch %s (skipped this round): %s", name, exc)
            return exc

    def record(self, info: ProjectInfo) -> None:
        versions = [
            ProjectVersion(
                version=v.version,
                released=v.released or datetime.now(UTC),
                requires_python=v.requires_python,
                has_sdist=v.has_sdist,
                yanked=v.yanked,
                skip="" if v.valid else "not a valid PEP 440 version",
            )
            for v in info.versions
        ]
        self.db.set_project(
            info.canonical_name,
            info.name,
            info.serial,
            info.summary or "",
            info.description or "",
            versions,
        )
        self.known[info.canonical_name] = info.serial
        self.log.info("recorded %s (%d versions)", info.name, len(versions))
        # yanks and new versions show on both pages (the Scribe skips an index with no files)
        self.pages.project(info.canonical_name)

    def close(self) -> None:
        self.fetcher.shutdown(wait=False, cancel_futures=True)
        self.db.close()
        super().close()
