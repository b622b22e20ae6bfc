"""Cloud Gazer: follows PyPI and records new packages, versions, yanks and removals.

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
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from functools import partial
from multiprocessing.pool import Pool
from queue import SimpleQueue
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels import protocols
from piwheels.db.database import ProjectVersion
from piwheels.master.config import MasterConfig
from piwheels.master.db_client import DatabaseError, DbClient
from piwheels.master.request_pool import RequestPool
from piwheels.master.task import Task
from piwheels.master.web_requests import PageRequests
from piwheels.pypi import ProjectInfo, ProjectNotFound, PyPIClient, PyPIError

FETCH_PROCESSES = 2
FETCH_THREADS = 8  # in each process
FETCH_CHUNK = 16  # projects handed to a process at a time
# Database writes in flight at once (a RequestPool of this many sockets). One Oracle is left for
# everyone else, so a slave's request never waits behind a burst of PyPI's changes.
WRITERS = 3
# Projects recorded in one transaction: each commit waits for the WAL to reach the disk, and
# one per project made that wait most of the cost of following a burst of changes.
WRITE_BATCH = 32
# projects fetched or fetching but not yet being recorded, at most
AHEAD = 2 * FETCH_PROCESSES * FETCH_THREADS + WRITERS * WRITE_BATCH

Fetched = ProjectInfo | PyPIError | None  # None: PyPI no longer has it

Entry = tuple[str, int | None]  # a project to look at, and the serial PyPI listed it with
# what a fetch asks of the database: a project to record, or one to mark removed
Write = tuple[Entry, ProjectInfo | None]


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
        self.fetcher: Pool | None = None  # started at the first fetch
        # chunk number -> (when to give up on it, its projects)
        self.fetching: dict[int, tuple[float, list[Entry]]] = {}
        self._chunks = itertools.count()
        self.ready: deque[Write] = deque()  # fetched, waiting for a free writer
        # fetched chunks (number, [(project, what came of it)]), not yet harvested
        self._done: SimpleQueue[tuple[int, list[tuple[Entry, Fetched]]]] = SimpleQueue()
        # A finished fetch wakes the task's poller through this pipe (zmq polls plain fds).
        self._wake_lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self.register_raw(self._wake_read, self._harvest)
        self.writers = RequestPool(
            self,
            config.oracle_queue,
            reversed(protocols.oracle),
            size=max(1, min(WRITERS, config.oracles - 1)),
            timeout=self.db.timeout,
            name="Oracles",
        )
        self.every(config.pypi_interval, self.discover)
        self.every(0.1, self.record_batch)

    @property
    def busy(self) -> bool:
        """Whether changes found by the last look are still being fetched or recorded."""
        return bool(self.pending or self.fetching or self.ready or self.writers.busy)

    @property
    def in_flight(self) -> int:
        """Projects being fetched (a few chunks: cheap to count)."""
        return sum(len(chunk) for _, chunk in self.fetching.values())

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
        while self.pending and self.in_flight + len(self.ready) < AHEAD:
            chunk = [self.pending.popleft() for _ in range(min(FETCH_CHUNK, len(self.pending)))]
            self._fetch(chunk)
        self._give_up_on_lost_fetches()
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

    def _fetch(self, chunk: list[Entry]) -> None:
        if self.fetcher is None:
            # spawned, not forked: this process has threads (and ZeroMQ's) of its own
            self.fetcher = multiprocessing.get_context("spawn").Pool(
                FETCH_PROCESSES,
                _start_fetching,
                (self.pypi.simple_url, self.pypi.json_url, self.pypi.timeout),
            )
        number = next(self._chunks)
        # each project waits at most a connect and a read of each of its fetches' turns
        deadline = time.monotonic() + 4 * self.pypi.timeout * (1 + len(chunk) // FETCH_THREADS)
        self.fetching[number] = (deadline, chunk)
        self.fetcher.apply_async(
            _fetch_chunk,
            (chunk,),
            callback=partial(self._fetched, number),
            error_callback=partial(self._fetch_failed, number),
        )

    def _fetched(self, number: int, results: list[tuple[Entry, Fetched]]) -> None:
        """On the pool's thread: hand the results to the task and wake it."""
        self._done.put((number, results))
        with self._wake_lock:
            if self._wake_write >= 0:
                # a full pipe holds wake-ups enough: the task will look
                with suppress(BlockingIOError):
                    os.write(self._wake_write, b"!")

    def _fetch_failed(self, number: int, exc: BaseException) -> None:
        """On the pool's thread: a fetch process failed the whole chunk (a bug, not PyPI)."""
        self._fetched(number, [])  # its projects are put back when harvested
        self.log.error("a fetch process failed: %r", exc)

    def _give_up_on_lost_fetches(self) -> None:
        """A chunk whose process died never answers: its projects go back in line."""
        now = time.monotonic()
        for number, (deadline, chunk) in list(self.fetching.items()):
            if deadline < now:
                self.log.error("no answer for %d fetches: trying them again", len(chunk))
                del self.fetching[number]
                self.pending.extend(chunk)

    def _harvest(self) -> None:
        """Take the finished fetches: what to write goes to a writer as one is free."""
        with suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass
        while not self._done.empty():
            number, results = self._done.get()
            taken = self.fetching.pop(number, None)
            if taken is None:
                continue  # given up on already, and fetched again
            if not results:
                self.pending.extend(taken[1])
            for entry, info in results:
                self._take(entry, info)
        self.record_batch()

    def _take(self, entry: Entry, info: Fetched) -> None:
        name = entry[0]
        if info is None:
            if self.known.get(name, -1) >= 0:
                self.ready.append((entry, None))
        elif isinstance(info, ProjectNotFound):
            # the index lists it, so this 404 is a stale cache (e.g. a brand-new project)
            self.log.warning("%s: %s (will retry)", name, info)
        elif isinstance(info, PyPIError):
            self.log.warning("cannot fetch %s (skipped this round): %s", name, info)
        elif info.serial != self.known.get(name):
            self.ready.append((entry, info))

    def _next_writes(self) -> list[Write]:
        """A removal alone, or up to WRITE_BATCH projects to record in one transaction."""
        if self.ready[0][1] is None:
            return [self.ready.popleft()]
        writes = []
        while self.ready and self.ready[0][1] is not None and len(writes) < WRITE_BATCH:
            writes.append(self.ready.popleft())
        return writes

    def _send(self, writes: list[Write]) -> None:
        [((name, _), first), *_] = writes
        answered = partial(self._written, writes)
        if first is None:
            self.writers.ask("REMOVEPROJECT", name, answered)
        else:
            updates = [_update(info) for _, info in writes if info]
            self.writers.ask("SETPROJECTS", updates, answered)

    def _written(self, writes: list[Write], status: str, result: Any) -> None:
        """The Oracle's answer: the projects are recorded (or will be tried again)."""
        # An ERROR (a timeout included) is the database's trouble (unreachable, say): those
        # are tried again at once. A project it refused is PyPI's data it cannot hold: tried
        # again at the next look (its serial is still the old one), not in an endless loop.
        failed = {name: str(result) for (name, _), _ in writes} if status == "ERROR" else {}
        refused = {}
        if status == "OK" and writes and writes[0][1] is not None:
            refused = {str(name): str(why) for name, why in result}
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
                self.log.info("%s was removed from PyPI", name)
                self.pages.project(name)
            else:
                self.known[info.canonical_name] = info.serial
                self.log.info("recorded %s (%d versions)", info.name, len(info.versions))
                # yanks and new versions show on both pages (the Scribe skips an index
                # with no files)
                self.pages.project(info.canonical_name)
        self.record_batch()

    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.terminate()  # a fetch waiting on PyPI is not worth waiting for
            self.fetcher.join()
        with self._wake_lock:
            os.close(self._wake_write)
            self._wake_write = -1
        os.close(self._wake_read)
        self.db.close()
        super().close()


def _update(info: ProjectInfo) -> tuple[Any, ...]:
    """What SETPROJECTS carries for one project (protocols.PROJECT_UPDATE)."""
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
    return (
        info.canonical_name,
        info.name,
        info.serial,
        info.summary or "",
        info.description or "",
        versions,
    )


# -- in the fetch processes ---------------------------------------------------------------------

_client: PyPIClient | None = None
_threads: ThreadPoolExecutor | None = None


def _start_fetching(simple_url: str, json_url: str, timeout: float) -> None:
    global _client, _threads  # one of each per process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master stops its workers itself
    _client = PyPIClient(simple_url, json_url, timeout=timeout)
    _threads = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="gazer-fetch")


def _fetch_chunk(chunk: list[Entry]) -> list[tuple[Entry, Fetched]]:
    assert _threads is not None
    return list(zip(chunk, _threads.map(_fetch_one, chunk), strict=True))


def _fetch_one(entry: Entry) -> Fetched:
    """The project's details, None when PyPI no longer has it, or the error to log."""
    assert _client is not None
    name, serial = entry
    try:
        return _client.project(name, min_serial=serial)
    except ProjectNotFound as exc:
        return exc if serial is not None else None
    except PyPIError as exc:
        return exc
