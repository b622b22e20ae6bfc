"""Cloud Gazer: follows PyPI and records new packages, versions, yanks, removals and statuses.

Following all of PyPI, it diffs the simple index's per-project serials against the serials it
recorded, so a restart resumes where it left off and only changed projects are fetched again.
Following an allow-list (a small farm, a demo), it asks PyPI about just those projects.
Fetches run in a few worker processes, several at once in each (they wait on the network, and
the HTTP and JSON work of thousands of projects would otherwise take the master's interpreter
from every other task), and the task keeps them a little ahead of the database writes, which it
sends to several Oracles at once and answers as each replies: a project's fetch, its write and
the next project's fetch overlap, and the task's loop never waits on either, so control messages
are never kept waiting.

Cloud Gazer is the only writer of the packages' serials, so it reads them from the database once
(~1M pairs through an Oracle: seconds of the master's CPU) and keeps its copy current as it
records and removes projects, rather than reading them all again at every look at PyPI.

What PyPI removed or quarantines (PEP 792) leaves the served tree once the grace has passed:
see :mod:`piwheels.master_support.withholding`.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from functools import partial
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels import protocols
from piwheels.abis import BuildABI
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.fetch_workers import FETCH_THREADS, Entry, Fetched, FetchWorkers
from piwheels.master_support.request_pool import RequestPool
from piwheels.master_support.task import Task
from piwheels.master_support.web_requests import PageRequests
from piwheels.master_support.withholding import PyPIWithholding
from piwheels.protocols import Failure
from piwheels.protocols.messages import FetchedProject, PageRequest
from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import PyPIError
from piwheels.records.removals import StatusUpdate

FETCH_PROCESSES = 2
FETCH_CHUNK = 16  # projects handed to a process at a time
# Database writes in flight at once (a RequestPool of this many sockets). One Oracle is left for
# everyone else, so a slave's request never waits behind a burst of PyPI's changes.
WRITERS = 3
# Projects recorded in one transaction: each commit waits for the WAL to reach the disk, and
# one per project made that wait most of the cost of following a burst of changes.
WRITE_BATCH = 32
# projects fetched or fetching but not yet being recorded, at most
AHEAD = 2 * FETCH_PROCESSES * FETCH_THREADS + WRITERS * WRITE_BATCH

# The pages of the projects recorded wait until all the look's changes are (or PAGES_HELD
# seconds at most): writing them while a burst of PyPI's changes was being recorded took a
# share of the two cores from recording them, and from queueing their new versions. Then they
# go PAGES_PER_TICK each 0.1 s, which the Secretary takes without dropping any.
PAGES_HELD = 60.0
PAGES_PER_TICK = 100

# what a fetch asks of the database: a project to record, one to mark removed (None), or the
# status alone of one whose details PyPI withholds (a Failure of kind "quarantined")
Write = tuple[Entry, FetchedProject | Failure | None]


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
        # projects known to have changed, not yet fetched
        self.pending: deque[Entry] = deque()
        self.pending_serial: int | None = None  # PyPI's serial once `pending` is done
        self.recorded_serial: int | None = None  # the last one recorded
        self.abis: list[BuildABI] = []  # the farm's, read at each look: rows carry skips
        self.fetchers = FetchWorkers(
            self, FETCH_PROCESSES, self.pypi, self._harvest, self._fetch_again
        )
        self.ready: deque[Write] = deque()  # fetched, waiting for a free writer
        # projects whose details PyPI withholds, with the reason their status was recorded with
        self.quarantined: dict[str, str] = {}
        self.pages_owed: dict[str, None] = {}  # projects whose pages wait (in order)
        self.pages_held_since = 0.0
        self.writers = RequestPool(
            self,
            config.oracle_queue,
            reversed(protocols.oracle),
            size=max(1, min(WRITERS, config.oracles - 1)),
            timeout=self.db.timeout,
            name="Oracles",
        )
        # PyPI's removals and quarantines, withheld once their grace has passed
        self.withholding = PyPIWithholding(self, config, self.pages)
        self.every(config.pypi_interval, self.discover)
        self.every(0.1, self.record_batch)
        self.every(0.1, self.send_pages)

    @property
    def busy(self) -> bool:
        """Whether changes found by the last look are still being fetched or recorded."""
        return bool(self.pending or self.fetchers.busy or self.ready or self.writers.busy)

    def once(self) -> None:
        self.discover()

    def discover(self) -> None:
        """Find which projects changed since we last looked."""
        if self.paused or self.busy:
            return
        started = time.monotonic()
        try:
            if not self.loaded:
                # once: from here on every change to a serial is one this task made
                self.known = self.db.get_package_serials()
                self.loaded = True
            self.abis = self.db.get_build_abis()
            if self.allow_list:
                # a handful of projects: ask about each rather than download PyPI's whole list
                self.pending = deque((name, None) for name in self.allow_list)
                self.record_batch()
                return
            changes = self.pypi.changed_projects(self.known)
        except (PyPIError, DatabaseError) as exc:
            self.log.warning("cannot look for changes now (will retry): %s", exc)
            return
        removed = [name for name in changes.removed if self.known[name] >= 0]
        self.pending = deque((p.canonical_name, p.serial) for p in changes.changed)
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
        self.record_batch()

    def record_batch(self) -> None:
        """Keep fetches going ahead of the writes and every writer busy; once all is done,
        record PyPI's serial. Runs on a timer too, to pick up again after a pause."""
        if self.paused:
            return
        while self.pending and self.fetchers.in_flight + len(self.ready) < AHEAD:
            chunk = [self.pending.popleft() for _ in range(min(FETCH_CHUNK, len(self.pending)))]
            if not self.fetchers.fetch(chunk, self.abis):
                self.pending.extendleft(reversed(chunk))  # tried again at the next turn
                break
        self.fetchers.check()
        # only as many as there are free sockets: the rest wait in `ready`, growing batches
        while self.ready and self.writers.free:
            self._send(self._next_writes())
        if self.pending_serial is not None and not self.busy:
            try:
                self.db.set_pypi_serial(self.pending_serial)
                if self.pending_serial != self.recorded_serial:
                    self.log.info("caught up with PyPI at serial %d", self.pending_serial)
                self.recorded_serial = self.pending_serial
            except DatabaseError as exc:
                self.log.error("cannot record PyPI serial: %s", exc)
            self.pending_serial = None

    def _harvest(self, entries: list[Entry], results: list[Fetched]) -> None:
        """A chunk fetched: what to write goes to a writer as one is free."""
        for entry, info in zip(entries, results, strict=True):
            self._take(entry, info)
        self.record_batch()

    def _fetch_again(self, entries: list[Entry], _: list[Fetched]) -> None:
        """A chunk whose fetch process died or stuck: its projects go back in line (and are
        taken again at record_batch's next turn, never from inside one)."""
        self.pending.extend(entries)

    def _take(self, entry: Entry, info: Fetched) -> None:
        name = entry[0]
        if info is None:
            if self.known.get(name, -1) >= 0:
                self.ready.append((entry, None))
        elif isinstance(info, Failure) and info.kind == "quarantined":
            if self.quarantined.get(name) != info.message:  # an allow-list asks every look
                self.ready.append((entry, info))
        elif isinstance(info, Failure) and info.kind == "not-found":
            # the index lists it, so this 404 is a stale cache (e.g. a brand-new project)
            self.log.warning("%s: %s (will retry)", name, info)
        elif isinstance(info, Failure):
            self.log.warning("cannot fetch %s (skipped this round): %s", name, info)
        elif info.serial != self.known.get(name):
            self.ready.append((entry, info))

    def _next_writes(self) -> list[Write]:
        """A removal or a status alone, or up to WRITE_BATCH projects to record in one
        transaction."""
        if not isinstance(self.ready[0][1], FetchedProject):
            return [self.ready.popleft()]
        writes: list[Write] = []
        while (
            self.ready
            and isinstance(self.ready[0][1], FetchedProject)
            and len(writes) < WRITE_BATCH
        ):
            writes.append(self.ready.popleft())
        return writes

    def _send(self, writes: list[Write]) -> None:
        [((name, serial), first), *_] = writes
        answered = partial(self._written, writes)
        if first is None:
            self.writers.ask("REMOVEPROJECT", name, answered)
        elif isinstance(first, Failure):
            update = StatusUpdate(name, serial, "quarantined", first.message)
            self.writers.ask("SETSTATUS", update, answered)
        else:
            rows = [info.row for _, info in writes if isinstance(info, FetchedProject)]
            self.writers.ask("SETPROJECTS", rows, answered)

    def _written(self, writes: list[Write], status: str, result: Any) -> None:
        """The Oracle's answer: the projects are recorded (or will be tried again)."""
        # An ERROR (a timeout included) is the database's trouble (unreachable, say): those
        # are tried again at once. A project it refused is PyPI's data it cannot hold: tried
        # again at the next look (its serial is still the old one), not in an endless loop.
        failed = {name: str(result) for (name, _), _ in writes} if status == "ERROR" else {}
        refused = {}
        if status == "OK" and isinstance(writes[0][1], FetchedProject):
            refused = {row.package: row.why for row in result}
        for entry, info in writes:
            name = entry[0]
            if name in failed:
                self.log.error("cannot record %s (will retry): %s", name, failed[name])
                self.pending.append(entry)
            elif name in refused:
                self.log.error(
                    "the database refused %s (tried again at the next look): %s",
                    name,
                    refused[name],
                )
            elif info is None:
                self.known[name] = -1
                self.quarantined.pop(name, None)
                self.log.info("%s was removed from PyPI", name)
                self._owe_pages(name)
            elif isinstance(info, Failure):
                if entry[1] is not None:
                    self.known[name] = entry[1]
                self.quarantined[name] = info.message
                self.log.warning("%s is quarantined on PyPI: %s", name, info.message or "-")
                self._owe_pages(name)
            else:
                self.known[info.canonical_name] = info.serial
                self.quarantined.pop(info.canonical_name, None)
                self.log.info("recorded %s (%d versions)", info.name, info.versions)
                # yanks and new versions show on both pages (the Scribe skips an index
                # with no files)
                self._owe_pages(info.canonical_name)
        self.record_batch()

    def _owe_pages(self, package: str) -> None:
        if not self.pages_owed:
            self.pages_held_since = time.monotonic()
        self.pages_owed[package] = None

    def send_pages(self) -> None:
        """Ask for the pages owed, a few at a time, once nothing (or too long) holds them."""
        if not self.pages_owed:
            return
        if self.busy and time.monotonic() - self.pages_held_since < PAGES_HELD:
            return
        for package in list(itertools.islice(self.pages_owed, PAGES_PER_TICK)):
            del self.pages_owed[package]
            self.pages.project(package)

    def close(self) -> None:
        self.fetchers.close()
        if self.pages_owed:
            # as the Secretary keeps its own at a stop: the next start asks for them
            pages = [PageRequest("BOTH", package) for package in self.pages_owed]
            try:
                self.db.save_pending_pages(pages)
                self.log.info("saved %d page requests for the next start", len(pages))
            except DatabaseError as exc:
                self.log.error("could not save %d page requests: %s", len(pages), exc)
        self.db.close()
        super().close()
