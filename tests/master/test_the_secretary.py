"""The Secretary in a running master and by hand: a burst of requests made one, requests held
over a restart, and a stalled Scribe that never blocks it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import zmq

from farm import MasterThread, configure, rows, wait_for
from master.page_requests import ask_for_pages
from piwheels import protocols
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master.the_secretary import TheSecretary
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import tell_tasks
from piwheels.message_codec import encode
from piwheels.transport import Socket
from pypi_index import LocalPyPI


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


def test_a_burst_of_requests_becomes_one_write(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    master = MasterThread(config).start()
    try:
        wait_for(lambda: "recorded piwtest-pure" in caplog.text, what="the project")
        wait_for(lambda: "wrote the pages of piwtest-pure" in caplog.text, what="first pages")
        caplog.clear()
        ask_for_pages(master, *[("BOTH", "piwtest-pure")] * 10, ("PROJECT", "piwtest-pure"))
        wait_for(lambda: "wrote the pages of piwtest-pure" in caplog.text, what="the pages")
        time.sleep(5 * config.page_delay)  # room for any duplicate write to show up
    finally:
        master.stop()
    assert caplog.text.count("wrote the pages of piwtest-pure") == 1


def test_requests_pending_at_stop_are_redone_at_start(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    config.page_delay = 600.0  # hold everything: nothing is written before the stop
    master = MasterThread(config, follow_pypi=False).start()
    try:
        wait_for(lambda: "master running" in caplog.text, what="the master")
        ask_for_pages(master, ("BOTH", "piwtest-pure"), ("SEARCH", ""))
        [secretary] = [t for t in master.master.tasks if isinstance(t, TheSecretary)]
        wait_for(
            lambda: {("BOTH", "piwtest-pure"), ("SEARCH", "")} <= set(secretary.held),
            what="the Secretary to hold both",
        )
    finally:
        master.stop()
    assert "saved 2 page requests" in caplog.text
    assert sorted(rows(config.dsn, "SELECT kind, package FROM pending_pages")) == [
        ("BOTH", "piwtest-pure"),
        ("SEARCH", ""),
    ]
    config.page_delay = 0.2
    master = MasterThread(config, follow_pypi=False).start()
    try:
        wait_for(lambda: "redoing 2 page requests" in caplog.text, what="the backlog")
        [secretary] = [t for t in master.master.tasks if isinstance(t, TheSecretary)]
        wait_for(
            lambda: not {("BOTH", "piwtest-pure"), ("SEARCH", "")} & set(secretary.held),
            what="the backlog to be passed on",
        )
        # and taken by the Scribe (what it holds unwritten at a stop is saved again)
        wait_for(
            lambda: "piwtest-pure" in caplog.text.split("redoing 2 page requests")[-1],
            what="the Scribe to do the project's pages",
        )
    finally:
        master.stop()
    assert rows(config.dsn, "SELECT count(*) FROM pending_pages") == [(0,)]


def test_a_stalled_scribe_never_blocks_the_secretary(config: MasterConfig) -> None:
    """Requests the Scribe cannot take yet wait (merging) in the Secretary, which still stops
    at once when told and saves them."""
    config.page_delay = 1.0  # long enough for all 300 to arrive before any is passed on
    context: zmq.Context = zmq.Context()
    control = Socket(zmq.PUB, reversed(protocols.task_control), context=context)
    control.bind(config.task_control_queue)
    inbox = Socket(zmq.PULL, protocols.master_control, context=context)
    inbox.bind(config.master_control_queue)
    stalled_scribe = Socket(zmq.PULL, protocols.web, context=context)
    stalled_scribe.zsock.setsockopt(zmq.RCVHWM, 10)
    stalled_scribe.bind(config.scribe_queue)  # and never read until the end
    tasks = [Seraph(config, context), TheOracle(config, context), TheSecretary(config, context)]
    secretary = tasks[-1]
    for task in tasks:
        task.start()
    requests = Socket(zmq.PUSH, reversed(protocols.web), context=context)
    try:
        requests.connect(config.web_queue)
        packages = [f"project-{n}" for n in range(300)]
        for package in packages:
            requests.send("BOTH", package)
        wait_for(lambda: len(secretary.held) == 300, what="the Secretary to take them all")
        wait_for(lambda: len(secretary.held) < 300, what="some to be passed on")
        time.sleep(1.0)
        held = len(secretary.held)
        assert held > 0, "everything was queued in front of the Scribe"
        control.zsock.send_multipart([b"Secretary", encode(control.protocol, "QUIT")])
        secretary.join(5.0)
        assert not secretary.is_alive(), "the Secretary did not stop"
        saved = rows(config.dsn, "SELECT kind, package FROM pending_pages")
        assert len(saved) == held
        passed_on = []
        while stalled_scribe.poll(100):
            passed_on.append(stalled_scribe.recv()[1])
        assert sorted(passed_on + [package for _, package in saved]) == sorted(packages)
    finally:
        requests.close()
        tell_tasks(control, "QUIT")
        for task in tasks:
            task.join(5.0)
        for sock in (control, inbox, stalled_scribe):
            sock.close()
        context.term()


def test_the_secretary_passes_on_quiet_requests_and_overdue_ones(
    config: MasterConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Oldest quiet request first; a request asked for again waits for quiet again, unless it
    has been asked for over MAX_HOLD, when it goes on anyway."""
    config.page_delay = 1.0
    clock = [0.0]
    monkeypatch.setattr("piwheels.master.the_secretary.time.monotonic", lambda: clock[0])
    context: zmq.Context = zmq.Context()
    scribe = Socket(zmq.PULL, protocols.web, context=context)
    scribe.bind(config.scribe_queue)
    secretary = TheSecretary(config, context)  # driven by hand here, not started

    def at(moment: float) -> list[str]:
        clock[0] = moment
        secretary.pass_on()
        if moment >= 30.0:
            secretary.pass_on_overdue()
        got = []
        while scribe.poll(200 if secretary.held else 20):
            got.append(scribe.recv()[1])
            if not secretary.held or len(got) == 2:
                break
        return got

    try:
        for moment, package in ((0.0, "a"), (0.5, "b"), (0.9, "a")):
            clock[0] = moment
            secretary.hold("PROJECT", package, package)
        assert at(1.6) == ["b"]  # "a" was asked for again at 0.9
        assert at(2.0) == ["a"]
        for moment in range(3, 40):  # asked for every second: never quiet
            clock[0] = float(moment)
            secretary.hold("PROJECT", "busy", "busy")
            expected = ["busy"] if moment == 33 else []
            assert at(moment + 0.5) == expected, moment
            if expected:
                break
    finally:
        secretary.held.clear()  # nothing to save at close
        secretary.close()
        scribe.close()
        context.term()
