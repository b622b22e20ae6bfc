"""The Secretary and the Scribe in a running master: bursts, restarts, and what lands on disk."""

from __future__ import annotations

import html
import json
import logging
import re
import time
import zipfile
from pathlib import Path

import pytest
import zmq

from farm import MasterThread, ScriptedSlave, build_result, configure, file_state, rows, wait_for
from piwheels import protocols
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master.the_secretary import TheSecretary
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import tell_tasks
from piwheels.message_codec import encode
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket
from piwheels.web.layout import log_path
from pypi_index import LocalPyPI, make_wheel


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


def ask_for_pages(master: MasterThread, *requests: tuple[str, str]) -> None:
    # a socket of the master's own context (inproc), so it must be closed before the master stops
    sock = Socket(zmq.PUSH, reversed(protocols.web), context=master.master.context)
    try:
        sock.connect(master.config.web_queue)
        for action, package in requests:
            sock.send(action, package or NO_DATA)
    finally:
        sock.zsock.close(linger=2000)


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


def test_a_recorded_build_lands_in_the_index_and_pages(
    config: MasterConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    content = wheel.read_bytes()
    # only a project's first wheel can bring the search index up to date in time (#14)
    config.search_interval = 3600.0
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
        state = file_state(wheel.name, content)
        assert slave.request("BUILT", build_result(state)) == ("SEND", wheel.name)
        slave.send_file(content)
        assert slave.request("SENT")[0] == "DONE"
        out = config.output_path
        page = out / "simple" / "piwtest-pure" / "index.json"
        wait_for(lambda: page.exists() and wheel.name in page.read_text(), what="the index page")
        # The root is rewritten at most every took/ROOT_DUTY seconds; on a loaded machine its
        # first run (at start, interpreter start-up included) took 4-8 s, so up to 80 s.
        wait_for(
            lambda: (
                (out / "simple" / "index.json").exists()
                and "piwtest-pure" in (out / "simple" / "index.json").read_text()
            ),
            timeout=120,
            what="the index root",
        )
        wait_for((out / "index.html").exists, what="the home page")
        wait_for(
            lambda: (
                (out / "packages.json").exists()
                and "piwtest-pure" in (out / "packages.json").read_text()
            ),
            timeout=120,  # within SEARCH_GAP of the run at start, and its duty
            what="the search index",
        )
        index = json.loads(page.read_text())
        # a wheel lost from the disk: one line for its project, naming it
        lost = out / "simple" / "piwtest-pure" / wheel.name
        lost.rename(tmp_path / "lost.whl")
        lost.with_name(wheel.name + ".metadata").rename(tmp_path / "lost.metadata")
        ask_for_pages(master, ("PROJECT", "piwtest-pure"))

        def missing() -> list[str]:
            return [r.getMessage() for r in caplog.records if "missing from" in r.getMessage()]

        wait_for(missing, what="the Scribe to notice the lost wheel")
        assert len(missing()) == 1
        assert missing()[0].startswith("1 of piwtest-pure's files are recorded but missing")
        assert wheel.name in missing()[0]
        (tmp_path / "lost.whl").rename(lost)
        (tmp_path / "lost.metadata").rename(lost.with_name(wheel.name + ".metadata"))
    finally:
        slave.close()
        master.stop()
    [entry] = [f for f in index["files"] if f["filename"] == wheel.name]
    assert entry["hashes"] == {"sha256": state.filehash}
    metadata = out / "simple" / "piwtest-pure" / (wheel.name + ".metadata")
    with zipfile.ZipFile(wheel) as zf:
        assert metadata.read_bytes() == zf.read("piwtest_pure-1.0.dist-info/METADATA")
    [build_id] = [r[0] for r in rows(config.dsn, "SELECT build_id FROM builds")]
    assert (out / log_path(build_id)).exists()
    project_page = (out / "project" / "piwtest-pure" / "index.html").read_text()
    assert "piwtest-pure" in project_page
    assert "<script>alert" not in project_page
    # an install line one can paste, at the farm's public URL (#14)
    install = f"pip install --index-url {config.public_url}/simple/ piwtest-pure"
    assert install in html.unescape(re.sub("<[^>]+>", "", project_page))
    data = json.loads((out / "project" / "piwtest-pure" / "json" / "index.json").read_text())
    assert data["index_url"] == f"{config.public_url}/simple/piwtest-pure/"
    home = html.unescape(re.sub("<[^>]+>", "", (out / "index.html").read_text()))
    assert f"pip install --index-url {config.public_url}/simple/ NAME" in home
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("*.part"))


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
