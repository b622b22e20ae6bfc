"""Cloud Gazer's fetch processes: PyPI's JSON API read away from the master's interpreter.

Following a burst of PyPI's changes is thousands of HTTP requests, JSON documents and PEP 440
versions; in the master that work would take the interpreter from every other task. Each
process takes chunks of projects over a pipe, fetches them on a few threads (they mostly wait
on the network), and answers with each project's row as the database takes it (JSON text, see
``db.database.project_row``): the master passes rows on to an Oracle without reading them.

The master's side polls the pipes in Cloud Gazer's own loop. A process that dies, or sits on a
chunk past its deadline, is replaced, and the projects it held go back to the task to fetch again.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from queue import SimpleQueue
from typing import NamedTuple

from piwheels.abis import BuildABI
from piwheels.db.database import ProjectUpdate, ProjectVersion, project_row
from piwheels.master_support.children import ignore_stop_signals
from piwheels.master_support.task import Task
from piwheels.pypi.answers import ProjectInfo
from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import ProjectNotFound, PyPIError
from piwheels.records.projects import ProjectRow

FETCH_THREADS = 8  # in each process

Entry = tuple[str, int | None]  # a project to look at, and the serial PyPI listed it with


class FetchedProject(NamedTuple):
    """A project as PyPI describes it now, ready for the database."""

    name: str  # as PyPI displays it
    canonical_name: str
    serial: int
    versions: int  # how many (for the log)
    row: ProjectRow


Fetched = FetchedProject | PyPIError | None  # None: PyPI no longer has it
Fetches = Callable[[list[Entry], list[Fetched]], None]


class _Worker(NamedTuple):
    process: BaseProcess
    conn: Connection


class _Chunk(NamedTuple):
    worker: _Worker
    deadline: float
    entries: list[Entry]


class FetchWorkers:
    """*count* fetch processes serving *task*; *fetched* gets each chunk's entries and what came
    of each, in order, *lost* the entries of a chunk that will never be answered."""

    def __init__(
        self, task: Task, count: int, pypi: PyPIClient, fetched: Fetches, lost: Fetches
    ) -> None:
        self.task = task
        self.count = count
        self.pypi = pypi
        self.fetched = fetched
        self.lost = lost
        self.log = task.log
        self.workers: list[_Worker] = []  # started at the first fetch
        self.chunks: dict[int, _Chunk] = {}  # number -> a chunk some worker holds
        self._numbers = itertools.count()

    @property
    def in_flight(self) -> int:
        """Projects being fetched (a few chunks: cheap to count)."""
        return sum(len(chunk.entries) for chunk in self.chunks.values())

    @property
    def busy(self) -> bool:
        return bool(self.chunks)

    def fetch(self, entries: list[Entry], abis: list[BuildABI]) -> bool:
        """Have *entries* fetched, each version's skips worked out for the farm's *abis*;
        False (and nothing taken) when no fetch process can be started now."""
        while len(self.workers) < self.count:
            if not self._start():
                break
        if not self.workers:
            return False
        held = {id(w): 0 for w in self.workers}
        for chunk in self.chunks.values():
            held[id(chunk.worker)] += 1
        worker = min(self.workers, key=lambda w: held[id(w)])
        number = next(self._numbers)
        # each project waits at most a connect and a read of each of its fetches' turns
        timeout = self.pypi.timeout
        deadline = time.monotonic() + 4 * timeout * (1 + len(entries) // FETCH_THREADS)
        self.chunks[number] = _Chunk(worker, deadline, entries)
        try:
            worker.conn.send((number, entries, abis))
        except OSError as exc:
            self._replace(worker, f"cannot be written to ({exc})")
        return True

    def check(self) -> None:
        """Replace a worker that sits on a chunk past its deadline (stuck, not dead)."""
        now = time.monotonic()
        late = {id(c.worker): c.worker for c in self.chunks.values() if c.deadline < now}
        for worker in late.values():
            self._replace(worker, "answered nothing in time")

    def close(self) -> None:
        for worker in self.workers:
            self._stop(worker)
        self.workers.clear()

    def _start(self) -> bool:
        # spawned, not forked: the master has threads (and ZeroMQ's) of its own
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(theirs, self.pypi.simple_url, self.pypi.json_url, self.pypi.timeout),
            name="piw-fetch",
            daemon=True,
        )
        try:
            process.start()
        except OSError as exc:  # out of processes or memory: tried again at the next fetch
            self.log.error("cannot start a fetch process: %s", exc)
            ours.close()
            return False
        finally:
            theirs.close()
        worker = _Worker(process, ours)
        self.workers.append(worker)
        self.task.register_raw(ours.fileno(), lambda: self._read(worker))
        return True

    def _read(self, worker: _Worker) -> None:
        try:
            number, results = worker.conn.recv()
        except (EOFError, OSError) as exc:
            self._replace(worker, f"is gone ({exc or 'no more output'})")
            return
        chunk = self.chunks.pop(number, None)
        if chunk is not None:
            self.fetched(chunk.entries, results)

    def _replace(self, worker: _Worker, why: str) -> None:
        """Stop *worker*, hand its chunks back as lost; a new one starts at the next fetch."""
        held = [n for n, chunk in self.chunks.items() if chunk.worker is worker]
        self.log.error(
            "fetch process %s %s: %d projects to fetch again",
            worker.process.pid,
            why,
            sum(len(self.chunks[n].entries) for n in held),
        )
        self._stop(worker)
        self.workers.remove(worker)
        for number in held:
            self.lost(self.chunks.pop(number).entries, [])

    def _stop(self, worker: _Worker) -> None:
        self.task.mute(worker.conn.fileno())
        worker.conn.close()
        # a fetch waiting on PyPI is not worth waiting for (and SIGTERM is ignored)
        worker.process.kill()
        worker.process.join()


# -- in the fetch processes ---------------------------------------------------------------------


class _Job(NamedTuple):
    number: int
    entries: list[Entry]
    abis: list[BuildABI]
    results: list[Fetched]
    left: list[int]  # projects not fetched yet, counted down under the process's lock


def _serve(conn: Connection, simple_url: str, json_url: str, timeout: float) -> None:
    """A fetch process: chunks in, each fetched by the first free thread, results out."""
    ignore_stop_signals()
    client = PyPIClient(simple_url, json_url, timeout=timeout)
    todo: SimpleQueue[tuple[_Job, int]] = SimpleQueue()
    lock = threading.Lock()  # the counts, and the pipe shared by the threads
    for _ in range(FETCH_THREADS):
        threading.Thread(target=_fetch_jobs, args=(client, todo, lock, conn), daemon=True).start()
    while True:
        try:
            number, entries, abis = conn.recv()
        except (EOFError, OSError):
            return  # the master closed its end
        job = _Job(number, entries, abis, [None] * len(entries), [len(entries)])
        if not entries:
            conn.send((number, []))
        for index in range(len(entries)):
            todo.put((job, index))


def _fetch_jobs(
    client: PyPIClient, todo: SimpleQueue[tuple[_Job, int]], lock: threading.Lock, conn: Connection
) -> None:
    while True:
        job, index = todo.get()
        job.results[index] = _fetch_one(client, job.entries[index], job.abis)
        with lock:
            job.left[0] -= 1
            if job.left[0] == 0:
                try:
                    conn.send((job.number, job.results))
                except OSError:
                    return  # the master has gone: the process ends with its main thread


def _fetch_one(client: PyPIClient, entry: Entry, abis: list[BuildABI]) -> Fetched:
    """The project's row, None when PyPI no longer has it, or the error to log."""
    name, serial = entry
    try:
        info = client.project(name, min_serial=serial)
    except ProjectNotFound as exc:
        return exc if serial is not None else None
    except PyPIError as exc:
        return exc
    except Exception as exc:  # a bug must cost this project its turn, not the whole chunk
        logging.getLogger(__name__).exception("fetching %s failed", name)
        return PyPIError(f"{name}: fetching failed: {exc!r}")
    return FetchedProject(
        info.name, info.canonical_name, info.serial, len(info.versions), _row(info, abis)
    )


def _row(info: ProjectInfo, abis: list[BuildABI]) -> ProjectRow:
    versions = [
        ProjectVersion(
            version=v.version,
            released=v.released,
            requires_python=v.requires_python,
            has_sdist=v.has_sdist,
            yanked=v.yanked,
            skip="" if v.valid else "not a valid PEP 440 version",
        )
        for v in info.versions
    ]
    update = ProjectUpdate(
        info.canonical_name,
        info.name,
        info.serial,
        info.summary or "",
        info.description or "",
        versions,
    )
    return project_row(update, abis)
