"""The Scribe and its project-writer child in a running master: a few requests in flight, the
child started again when it dies, and what it had in hand saved at a stop."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
import zmq

from farm import MasterThread, make_config, rows, wait_for
from piwheels import protocols
from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectVersion
from piwheels.master.the_scribe import (
    WRITER_BACKLOG,
    WRITER_RESTART_GAP,
    WRITER_TRIES,
    TheScribe,
)
from piwheels.master.the_secretary import TheSecretary
from piwheels.master_support.config import MasterConfig
from piwheels.transport import Socket

PROJECTS = [f"proj-{n}" for n in range(10)]
T = TypeVar("T")


@pytest.fixture
def config(master_dsn: str, tmp_path: Path) -> MasterConfig:
    db = Database(master_dsn)
    try:
        db.set_build_abis(sorted_abis(["cp39"]))
        released = datetime(2026, 1, 1, tzinfo=UTC)
        for package in PROJECTS:
            db.set_project(
                package,
                package,
                1,
                "",
                "",
                [ProjectVersion("1.0", released, None, True, False, "")],
            )
    finally:
        db.close()
    (tmp_path / "www").mkdir()
    return make_config(master_dsn, tmp_path / "www", tmp_path, ["cp39"], page_delay=0.1)


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config, follow_pypi=False).start()
    try:
        yield running
    finally:
        # a writer this test stopped must not hold up the master's stop for its whole grace
        scribe = the_scribe(running)
        if scribe.writer.process is not None:
            with_writer(scribe.writer.process, signal.SIGCONT)
        running.stop()


def the_task(master: MasterThread, kind: type[T]) -> T:
    """The master's task of that *kind*, once the master has made its tasks."""

    def find() -> list[T]:
        return [t for t in master.master.tasks if isinstance(t, kind)]

    [task] = wait_for(find, what=f"the {kind.__name__} task")
    return task


def the_scribe(master: MasterThread) -> TheScribe:
    return the_task(master, TheScribe)


def the_writer(scribe: TheScribe) -> subprocess.Popen[bytes]:
    return wait_for(lambda: scribe.writer.process, what="the project writer")


def new_writer(scribe: TheScribe, pids: set[int]) -> subprocess.Popen[bytes] | None:
    """The writer child, if it is not one of *pids*."""
    process = scribe.writer.process
    return process if process is not None and process.pid not in pids else None


def with_writer(writer: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the writer child the test's master started (and only it)."""
    if writer.poll() is None:
        os.kill(writer.pid, sig)


def ask_for_pages(master: MasterThread, *requests: tuple[str, str]) -> None:
    sock = Socket(zmq.PUSH, reversed(protocols.web), context=master.master.context)
    try:
        sock.connect(master.config.web_queue)
        for action, package in requests:
            sock.send(action, package)
    finally:
        sock.zsock.close(linger=2000)


def written(caplog: pytest.LogCaptureFixture, package: str) -> int:
    return caplog.text.count(f"wrote the pages of {package}\n")


def test_a_stalled_writer_holds_a_few_requests_and_the_secretary_the_rest(
    master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    scribe = the_scribe(master)
    secretary = the_task(master, TheSecretary)
    writer = the_writer(scribe)
    with_writer(writer, signal.SIGSTOP)
    ask_for_pages(master, *[("PROJECT", package) for package in PROJECTS])
    wait_for(lambda: len(scribe.in_flight) == WRITER_BACKLOG, what="the writer's backlog to fill")
    wait_for(lambda: not secretary.held, what="the Secretary to pass on what it can")
    # the Scribe took no more than its inbox holds (the rest wait in the Secretary's socket)
    assert len(scribe.in_flight) == WRITER_BACKLOG
    with_writer(writer, signal.SIGCONT)
    wait_for(lambda: all(written(caplog, p) for p in PROJECTS), what="every project's pages")
    assert [written(caplog, p) for p in PROJECTS] == [1] * len(PROJECTS)
    assert not scribe.in_flight
    assert scribe.writer.process is writer  # the same child throughout


def test_a_writer_that_dies_is_started_again_with_what_it_had_in_hand(
    master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    scribe = the_scribe(master)
    writer = the_writer(scribe)
    with_writer(writer, signal.SIGSTOP)
    ask_for_pages(master, ("BOTH", "proj-1"), ("PROJECT", "proj-2"))
    wait_for(lambda: len(scribe.in_flight) == 2, what="both requests in the writer's hands")
    with_writer(writer, signal.SIGKILL)
    wait_for(lambda: written(caplog, "proj-1") and written(caplog, "proj-2"), what="the pages")
    assert "the project writer ended (status -9) with 2 requests in hand" in caplog.text
    [record] = [r for r in caplog.records if "the project writer ended" in r.getMessage()]
    assert record.levelno == logging.ERROR
    again = scribe.writer.process
    assert again is not None and again.pid != writer.pid
    # and the new child goes on taking requests
    ask_for_pages(master, ("PROJECT", "proj-3"))
    wait_for(lambda: written(caplog, "proj-3"), what="a page from the new writer")
    assert (master.config.output_path / "project" / "proj-3" / "index.html").exists()


def test_a_writer_that_keeps_dying_is_restarted_at_most_once_a_second(
    master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    scribe = the_scribe(master)
    pids: set[int] = set()
    started = []
    for _ in range(3):
        writer = wait_for(
            lambda: new_writer(scribe, pids),
            what="a new writer",
        )
        pids.add(writer.pid)
        started.append(scribe.writer.started)
        with_writer(writer, signal.SIGKILL)
    wait_for(lambda: new_writer(scribe, pids), what="a fourth writer")
    started.append(scribe.writer.started)
    assert caplog.text.count("the project writer ended (status -9)") == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert min(gaps) >= WRITER_RESTART_GAP, gaps
    ask_for_pages(master, ("PROJECT", "proj-4"))
    wait_for(lambda: written(caplog, "proj-4"), what="a page after the restarts")


def test_a_request_the_writer_dies_on_again_and_again_is_given_up(
    master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    """One project that kills the writer must not stop every other project's pages."""
    caplog.set_level(logging.INFO, logger="piwheels")
    scribe = the_scribe(master)
    real_command = scribe.writer.command
    # a writer that dies on whatever it is given (and waits for ever when given nothing),
    # saying so in words of its own, the last without a newline
    script = (
        "import sys; sys.stdin.buffer.read(1); sys.stderr.write('it fell over\\nfor good'); "
        "sys.exit(3)"
    )
    scribe.writer.command = [sys.executable, "-c", script]
    with_writer(the_writer(scribe), signal.SIGKILL)
    wait_for(
        lambda: (process := scribe.writer.process) and process.args == scribe.writer.command,
        what="the dying writer",
    )
    ask_for_pages(master, ("PROJECT", "proj-8"))
    wait_for(
        lambda: "cannot write the pages of proj-8: the project writer died on them" in caplog.text,
        what="proj-8 to be given up",
    )
    assert caplog.text.count("the project writer ended (status 3) with 1 requests") == WRITER_TRIES
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert said.count("project writer: it fell over") == WRITER_TRIES
    assert said.count("project writer: for good") == WRITER_TRIES
    assert not scribe.in_flight
    scribe.writer.command = real_command
    with_writer(the_writer(scribe), signal.SIGKILL)  # the last dying one, idle
    ask_for_pages(master, ("PROJECT", "proj-9"))
    wait_for(lambda: written(caplog, "proj-9"), what="the next project's pages")
    assert not written(caplog, "proj-8")


def test_what_the_writer_has_in_hand_at_a_stop_is_saved(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    master = MasterThread(config, follow_pypi=False).start()
    try:
        scribe = the_scribe(master)
        writer = the_writer(scribe)
        with_writer(writer, signal.SIGSTOP)  # it will not finish them, however long it is given
        ask_for_pages(master, ("BOTH", "proj-5"), ("PROJECT", "proj-6"))
        wait_for(lambda: len(scribe.in_flight) == 2, what="both requests in the writer's hands")
    finally:
        master.stop()
    assert writer.poll() is not None  # ended (killed: stopped processes ignore SIGTERM)
    assert "the project writer did not finish" in caplog.text
    assert "saved 2 unwritten page requests" in caplog.text
    assert sorted(rows(config.dsn, "SELECT kind, package FROM pending_pages")) == [
        ("BOTH", "proj-5"),
        ("PROJECT", "proj-6"),
    ]
    assert not written(caplog, "proj-5")
    # redone at the next start
    master = MasterThread(config, follow_pypi=False).start()
    try:
        wait_for(lambda: written(caplog, "proj-5") and written(caplog, "proj-6"), what="the pages")
    finally:
        master.stop()
    assert rows(config.dsn, "SELECT count(*) FROM pending_pages") == [(0,)]


def test_a_writer_that_finishes_in_time_at_a_stop_saves_nothing(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    master = MasterThread(config, follow_pypi=False).start()
    try:
        scribe = the_scribe(master)
        the_writer(scribe)
        ask_for_pages(master, ("PROJECT", "proj-7"))
        wait_for(lambda: scribe.in_flight or written(caplog, "proj-7"), what="the request")
    finally:
        master.stop()
    assert written(caplog, "proj-7") == 1
    assert "unwritten" not in caplog.text
    assert rows(config.dsn, "SELECT count(*) FROM pending_pages") == [(0,)]
