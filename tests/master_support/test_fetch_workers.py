"""Cloud Gazer's fetch processes: rows made from a real (local) PyPI, and a process that dies or
sticks replaced with its projects handed back."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import configure
from piwheels.abis import sorted_abis
from piwheels.master_support import children
from piwheels.master_support.fetch_workers import Entry, Fetched, FetchWorkers
from piwheels.master_support.task import Task
from piwheels.protocols.messages import FetchedProject
from piwheels.pypi.client import PyPIClient
from pypi_index import LocalPyPI

ABIS = sorted_abis(["cp39", "cp311"])


class Host(Task):
    """A task to poll the workers' pipes, as Cloud Gazer does."""

    name = "Fetch host"


class Outcome:
    def __init__(self) -> None:
        self.fetched: list[tuple[list[Entry], list[Fetched]]] = []
        self.lost: list[list[Entry]] = []

    def on_fetched(self, entries: list[Entry], results: list[Fetched]) -> None:
        self.fetched.append((entries, results))

    def on_lost(self, entries: list[Entry], _: list[Fetched]) -> None:
        self.lost.append(entries)


@pytest.fixture
def host(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, context: zmq.Context[Any]
) -> Iterator[Host]:
    task = Host(configure(master_dsn, tmp_path, pypi_index, ["cp39"]), context)
    yield task
    task.close()


def run_until(host: Host, done: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "nothing came in time"
        host.poll(0.1)


def start(host: Host, pypi: PyPIClient, outcome: Outcome) -> FetchWorkers:
    return FetchWorkers(host, 1, pypi, outcome.on_fetched, outcome.on_lost)


def test_a_fetch_gives_the_rows_the_database_takes(host: Host, pypi_index: LocalPyPI) -> None:
    outcome = Outcome()
    workers = start(host, PyPIClient(pypi_index.simple_url, pypi_index.json_url), outcome)
    try:
        entries = [("piwtest-pure", None), ("no-such-project", None)]
        workers.fetch(entries, ABIS)
        assert workers.in_flight == 2
        run_until(host, lambda: outcome.fetched)
    finally:
        workers.close()
    [(got, [pure, missing])] = outcome.fetched
    assert got == entries and not workers.busy
    assert missing is None  # PyPI no longer has it
    assert isinstance(pure, FetchedProject)
    assert pure.canonical_name == pure.row.package == "piwtest-pure"
    assert pure.row.abis == "cp39 cp311"
    row = json.loads(pure.row.row)
    assert row["package"] == "piwtest-pure" and row["serial"] == pure.serial
    assert len(row["versions"]) == pure.versions > 0
    assert all(isinstance(v["abi_skips"], list) for v in row["versions"])


def test_a_dead_process_hands_its_projects_back(
    host: Host, pypi_index: LocalPyPI, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = Outcome()
    workers = start(host, PyPIClient(pypi_index.simple_url, pypi_index.json_url), outcome)
    try:
        workers.fetch([("piwtest-pure", None)], ABIS)
        run_until(host, lambda: outcome.fetched)
        [first] = workers.workers
        assert first.process is not None
        workers.fetch([("piwtest-cext", None)], ABIS)
        os.kill(first.process.pid, signal.SIGKILL)
        with caplog.at_level(logging.ERROR):
            run_until(host, lambda: outcome.lost)
        assert outcome.lost == [[("piwtest-cext", None)]]
        assert "fetch process" in caplog.text and "1 projects to fetch again" in caplog.text
        assert not workers.busy and not workers.workers
        # the next fetch starts a new process
        workers.fetch([("piwtest-cext", None)], ABIS)
        run_until(host, lambda: len(outcome.fetched) == 2)
        assert isinstance(outcome.fetched[1][1][0], FetchedProject)
    finally:
        workers.close()


def test_a_stuck_process_is_replaced(host: Host, pypi_index: LocalPyPI) -> None:
    outcome = Outcome()
    pypi = PyPIClient(pypi_index.simple_url, pypi_index.json_url, timeout=0.2)
    workers = start(host, pypi, outcome)
    try:
        workers.fetch([("piwtest-pure", None)], ABIS)
        run_until(host, lambda: outcome.fetched)
        [stuck] = workers.workers
        process = stuck.process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        workers.fetch([("piwtest-cext", None)], ABIS)
        run_until(host, lambda: (workers.check(), outcome.lost)[1])
        assert outcome.lost == [[("piwtest-cext", None)]]
        assert process.poll() is not None
    finally:
        workers.close()


def test_no_fetch_process_to_be_had_takes_nothing(
    host: Host,
    pypi_index: LocalPyPI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = Outcome()
    workers = start(host, PyPIClient(pypi_index.simple_url, pypi_index.json_url), outcome)

    def no_more(*_: Any, **__: Any) -> None:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    try:
        with monkeypatch.context() as patch, caplog.at_level(logging.ERROR):
            patch.setattr(children.subprocess, "Popen", no_more)
            assert not workers.fetch([("piwtest-pure", None)], ABIS)
        assert "cannot start a fetch process" in caplog.text
        assert not workers.busy and not workers.workers
        assert workers.fetch([("piwtest-pure", None)], ABIS)  # once the system has room again
        run_until(host, lambda: outcome.fetched)
    finally:
        workers.close()
