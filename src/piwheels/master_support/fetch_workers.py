"""Cloud Gazer's fetch processes: PyPI's JSON API read away from the master's interpreter.

Following a burst of PyPI's changes is thousands of HTTP requests, JSON documents and PEP 440
versions; in the master that work would take the interpreter from every other task. Each
process (``python -m piwheels.master_support.fetch_workers``, a :class:`ChildProcess`) takes
chunks of projects as FETCH messages (protocols.fetcher), fetches them on a few threads (they
mostly wait on the network), and answers FETCHED with each project's row as the database takes
it (JSON text, see ``db.database.project_row``): the master passes rows on to an Oracle
without reading them. A project costs two requests: its details from the JSON API, and its
PEP 792 status from its simple page (``piwheels.pypi.statuses``).

A process that dies, or sits on a chunk past its deadline, is replaced, and the projects it
held go back to the task to fetch again.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import IO, NamedTuple

from piwheels import protocols
from piwheels.abis import BuildABI
from piwheels.db.project_rows import ProjectUpdate, ProjectVersion, project_row
from piwheels.master_support.children import ChildProcess, ignore_stop_signals
from piwheels.master_support.task import Task
from piwheels.message_codec import ProtocolError
from piwheels.pipes import StreamBroken, read_message, write_message
from piwheels.protocols import Failure
from piwheels.protocols.messages import (
    FetchAnswer,
    FetchedProject,
    FetchEntry,
    FetchRequest,
    FetchResult,
)
from piwheels.pypi.answers import ProjectInfo
from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import ProjectNotFound, PyPIError
from piwheels.records.projects import ProjectRow
from piwheels.records.removals import ProjectStatus

FETCH_THREADS = 8  # in each process

Entry = tuple[str, int | None]  # a project to look at, and the serial PyPI listed it with
# what came of one: its row, PyPI's error (kind "not-found" or "failed"; "quarantined" for a
# project whose details PyPI withholds, the message its reason), or None: PyPI no longer has it
Fetched = FetchedProject | Failure | None
Fetches = Callable[[list[Entry], list[Fetched]], None]


class _Chunk(NamedTuple):
    worker: ChildProcess
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
        self.workers: list[ChildProcess] = []  # started at the first fetch
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
        request = FetchRequest(number, [FetchEntry(*entry) for entry in entries], abis)
        if not worker.send("FETCH", request):
            self._replace(worker, "cannot be written to")
        return True

    def check(self) -> None:
        """Replace a worker that sits on a chunk past its deadline (stuck, not dead)."""
        now = time.monotonic()
        late = {id(c.worker): c.worker for c in self.chunks.values() if c.deadline < now}
        for worker in late.values():
            self._replace(worker, "answered nothing in time")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(0)  # a fetch waiting on PyPI is not worth waiting for
        self.workers.clear()

    def _start(self) -> bool:
        pypi = self.pypi
        worker: ChildProcess
        worker = ChildProcess(
            self.task,
            "fetch process",
            [
                sys.executable,
                "-m",
                "piwheels.master_support.fetch_workers",
                pypi.simple_url,
                pypi.json_url,
                str(pypi.timeout),
            ],
            protocols.fetcher,
            on_message=lambda _, answer: self._answered(answer),
            on_end=lambda status: self._replace(worker, f"is gone (status {status})"),
        )
        if not worker.start():  # out of processes or memory: tried again at the next fetch
            return False
        self.workers.append(worker)
        return True

    def _answered(self, answer: FetchAnswer) -> None:
        chunk = self.chunks.pop(answer.number, None)
        if chunk is not None:
            self.fetched(chunk.entries, [_fetched(result) for result in answer.results])

    def _replace(self, worker: ChildProcess, why: str) -> None:
        """Stop *worker*, hand its chunks back as lost; a new one starts at the next fetch."""
        if worker not in self.workers:
            return  # replaced already (its end reported as it was being stopped)
        held = [n for n, chunk in self.chunks.items() if chunk.worker is worker]
        pid = worker.process.pid if worker.process is not None else "-"
        self.log.error(
            "fetch process %s %s: %d projects to fetch again",
            pid,
            why,
            sum(len(self.chunks[n].entries) for n in held),
        )
        self.workers.remove(worker)
        worker.stop(0)
        for number in held:
            self.lost(self.chunks.pop(number).entries, [])


def _fetched(result: FetchResult) -> Fetched:
    return result.project if result.project is not None else result.failure


# -- in the fetch processes ---------------------------------------------------------------------

CHILD_SIDE = reversed(protocols.fetcher)


class _Job(NamedTuple):
    number: int
    entries: list[FetchEntry]
    abis: list[BuildABI]
    results: list[FetchResult]
    left: list[int]  # projects not fetched yet, counted down under the process's lock


def main(argv: list[str] | None = None) -> int:
    """A fetch process: chunks in, each fetched by the first free thread, results out."""
    parser = argparse.ArgumentParser(prog="python -m piwheels.master_support.fetch_workers")
    parser.add_argument("simple_url")
    parser.add_argument("json_url")
    parser.add_argument("timeout", type=float)
    args = parser.parse_args(argv)
    ignore_stop_signals()
    client = PyPIClient(args.simple_url, args.json_url, timeout=args.timeout)
    out = sys.stdout.buffer
    todo: SimpleQueue[tuple[_Job, int]] = SimpleQueue()
    lock = threading.Lock()  # the counts, and the pipe shared by the threads
    for _ in range(FETCH_THREADS):
        threading.Thread(target=_fetch_jobs, args=(client, todo, lock, out), daemon=True).start()
    while True:
        try:
            message = read_message(sys.stdin.buffer, CHILD_SIDE)
        except StreamBroken:
            return 1
        except ProtocolError as exc:
            logging.getLogger(__name__).error("bad request: %s", exc)
            continue
        if message is None:
            return 0  # the master closed its end
        request: FetchRequest = message[1]
        count = len(request.entries)
        job = _Job(request.number, request.entries, request.abis, [NOTHING] * count, [count])
        if not count:
            with lock:
                write_message(out, CHILD_SIDE, "FETCHED", FetchAnswer(job.number, []))
        for index in range(count):
            todo.put((job, index))


NOTHING = FetchResult(None, None)  # PyPI no longer has it


def _fetch_jobs(
    client: PyPIClient, todo: SimpleQueue[tuple[_Job, int]], lock: threading.Lock, out: IO[bytes]
) -> None:
    while True:
        job, index = todo.get()
        job.results[index] = _fetch_one(client, job.entries[index], job.abis)
        with lock:
            job.left[0] -= 1
            if job.left[0] == 0:
                try:
                    write_message(out, CHILD_SIDE, "FETCHED", FetchAnswer(job.number, job.results))
                except OSError:
                    return  # the master has gone: the process ends with its main thread


def _fetch_one(client: PyPIClient, entry: FetchEntry, abis: list[BuildABI]) -> FetchResult:
    """The project's row, nothing when PyPI no longer has it, or the error to log."""
    name, serial = entry
    try:
        info = client.project(name, min_serial=serial)
        # its PEP 792 status: one more request, to its simple page
        status = client.project_status(info.canonical_name, min_serial=info.serial)
    except ProjectNotFound as exc:
        return _not_found(client, name, serial, exc)
    except PyPIError as exc:
        return FetchResult(None, Failure("failed", str(exc)))
    except Exception as exc:  # a bug must cost this project its turn, not the whole chunk
        logging.getLogger(__name__).exception("fetching %s failed", name)
        return FetchResult(None, Failure("failed", f"{name}: fetching failed: {exc!r}"))
    project = FetchedProject(
        info.name, info.canonical_name, info.serial, len(info.versions), _row(info, status, abis)
    )
    return FetchResult(project, None)


def _not_found(
    client: PyPIClient, name: str, serial: int | None, exc: ProjectNotFound
) -> FetchResult:
    """A project the JSON API does not know: gone from PyPI, a stale cache, or one PyPI
    quarantines, whose details it withholds while its simple page still says why (the status
    alone is then recorded, as a Failure of kind "quarantined" carrying the reason)."""
    try:
        status = client.project_status(name)
    except PyPIError:
        status = None
    if status is not None and status.status == "quarantined":
        return FetchResult(None, Failure("quarantined", status.reason or ""))
    return FetchResult(None, Failure("not-found", str(exc))) if serial is not None else NOTHING


def _row(info: ProjectInfo, status: ProjectStatus | None, abis: list[BuildABI]) -> ProjectRow:
    versions = [
        ProjectVersion(
            version=v.version,
            released=v.released,
            requires_python=v.requires_python,
            has_sdist=v.has_sdist,
            yanked=v.yanked,
            skip="" if v.valid else "not a valid PEP 440 version",
            yanked_reason=v.yanked_reason,
            sdist_url=v.sdist_url,
            sdist_sha256=v.sdist_sha256,
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
        status=status.status if status is not None else None,
        status_reason=status.reason if status is not None else None,
    )
    return project_row(update, abis)


if __name__ == "__main__":
    sys.exit(main())
