"""Cloud Gazer following a whole (local) PyPI: additions, yanks, removals, and resuming."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import zmq

from farm import MasterThread, ScriptedSlave, configure, rows, stats, wait_for
from piwheels import protocols
from piwheels.db.database import Database
from piwheels.master import cloud_gazer
from piwheels.master.cloud_gazer import CloudGazer
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import Task, tell_tasks
from piwheels.transport import Socket
from pypi_index import LocalPyPI

VERSIONS = "SELECT package, version, yanked, removed, has_sdist FROM versions ORDER BY 1, 2"


def wait_for_serial(config: MasterConfig, index: LocalPyPI, what: str) -> None:
    """Until the database holds the index's serial: Cloud Gazer has recorded all it saw."""
    wait_for(
        lambda: rows(config.dsn, "SELECT pypi_serial FROM configuration") == [(index.serial,)],
        what=what,
    )


def follow_everything(master_dsn: str, tmp_path: Path, index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, index, ["cp39"], packages=[])


@dataclass
class Alone:
    """A Cloud Gazer outside a master, with Seraph and an Oracle (started when the test says)
    and the master's control sockets; *sockets* the test made, closed at the end too."""

    context: zmq.Context[Any]
    gazer: CloudGazer
    oracles: list[Task]
    sockets: list[Socket]


@contextmanager
def gazer_alone(config: MasterConfig) -> Iterator[Alone]:
    context: zmq.Context[Any] = zmq.Context()
    control = Socket(zmq.PUB, reversed(protocols.task_control), context=context)
    control.bind(config.task_control_queue)
    inbox = Socket(zmq.PULL, protocols.master_control, context=context)
    inbox.bind(config.master_control_queue)
    alone = Alone(
        context,
        CloudGazer(config, context),
        [Seraph(config, context), TheOracle(config, context)],
        [control, inbox],
    )
    try:
        yield alone
    finally:
        alone.gazer.close()
        tell_tasks(control, "QUIT")
        for task in alone.oracles:
            if task.ident is not None:  # started
                task.join(5.0)
        for sock in alone.sockets:
            sock.close()
        context.term()


def test_follows_additions_yanks_and_removals(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> None:
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    master = MasterThread(config).start()
    try:
        wait_for_serial(config, pypi_index, "the serial to be recorded")
        assert ("piwtest-pure", "1.1", True, False, True) in rows(config.dsn, VERSIONS)
        # the index also serves the build dependencies: following all of it records them too
        packages = {row[0] for row in rows(config.dsn, "SELECT package FROM packages")}
        assert {"piwtest-pure", "piwtest-cext", "setuptools"} <= packages

        pypi_index.add_version("piwtest-pure", "2.0")
        pypi_index.add_wheel_only_version("piwtest-cext", "2.0")
        pypi_index.yank("piwtest-abi3", "1.0", "bad build")
        pypi_index.remove_project("piwtest-broken")
        wait_for_serial(config, pypi_index, "the changes to be recorded")
    finally:
        master.stop()
    versions = rows(config.dsn, VERSIONS)
    assert ("piwtest-pure", "2.0", False, False, True) in versions
    assert ("piwtest-cext", "2.0", False, False, False) in versions  # binary only: not queued
    assert ("piwtest-abi3", "1.0", True, False, True) in versions
    # with the uploaders' reasons (PEP 592), where they gave one
    reasons = rows(
        config.dsn,
        "SELECT package, version, yanked_reason FROM versions WHERE yanked ORDER BY 1, 2",
    )
    assert reasons == [
        ("piwtest-abi3", "1.0", "bad build"),
        ("piwtest-pure", "1.1", "broken release, use 1.0"),
    ]
    assert rows(config.dsn, "SELECT removed FROM packages WHERE package = 'piwtest-broken'") == [
        (True,)
    ]
    queued = rows(
        config.dsn,
        "SELECT v.package, v.version FROM build_queue "
        "JOIN versions v USING (version_id) WHERE v.package LIKE 'piwtest-%%' ORDER BY 1, 2",
    )
    assert queued == [("piwtest-cext", "1.0"), ("piwtest-pure", "1.0"), ("piwtest-pure", "2.0")]


def test_a_restart_resumes_where_it_left_off(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> None:
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    master = MasterThread(config).start()
    try:
        wait_for_serial(config, pypi_index, "the first pass")
    finally:
        master.stop()
    pypi_index.add_version("piwtest-pure", "3.0")
    pypi_index.clear_requests()
    master = MasterThread(config).start()
    try:
        wait_for(
            lambda: ("piwtest-pure", "3.0", False, False, True) in rows(config.dsn, VERSIONS),
            what="the new version",
        )
    finally:
        master.stop()
    fetched = {r.path for r in pypi_index.requests if r.path.startswith("/pypi/")}
    assert fetched == {"/pypi/piwtest-pure/json"}  # only the project that changed


def test_two_slaves_never_build_the_same_thing(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> None:
    config = configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-cext"])
    master = MasterThread(config).start()
    first, second = ScriptedSlave(config, abi="cp39"), ScriptedSlave(config, abi="cp39")
    try:
        first.hello()
        second.hello()
        assert first.wait_for_build() == ("piwtest-cext", "1.0")
        for _ in range(int(3 / config.queue_interval) + 2):  # across several queue refreshes
            assert second.idle()[0] == "SLEEP"
            time.sleep(config.queue_interval)
            assert first.request("BUSY", stats())[0] == "CONT"
    finally:
        first.close()
        second.close()
        master.stop()


def test_serials_are_read_once_and_kept_current(
    fresh_database: str, master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI
) -> None:
    """Each look at PyPI diffs against the serials Cloud Gazer keeps, not a fresh read of all
    of them: a serial changed behind its back goes unnoticed, one it recorded is not fetched
    again."""
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    root = urlsplit(config.pypi_simple).path
    master = MasterThread(config).start()
    try:
        wait_for_serial(config, pypi_index, "the first pass")
        # only the superuser may write the table; the master's role goes through functions
        with psycopg.connect(fresh_database) as conn:
            conn.execute("UPDATE packages SET serial = 0 WHERE package = 'piwtest-cext'")
        pypi_index.clear_requests()
        pypi_index.add_version("piwtest-pure", "4.0")
        wait_for(
            lambda: ("piwtest-pure", "4.0", False, False, True) in rows(config.dsn, VERSIONS),
            what="the new version",
        )
        # three more looks at the list after the one that found 4.0
        wait_for(
            lambda: sum(r.path == root for r in pypi_index.requests) >= 4,
            timeout=30,
            what="more looks at PyPI",
        )
    finally:
        master.stop()
    fetched = [r.path for r in pypi_index.requests if r.path.startswith("/pypi/")]
    assert fetched == ["/pypi/piwtest-pure/json"]
    serial = rows(config.dsn, "SELECT serial FROM packages WHERE package = 'piwtest-pure'")
    assert serial == [(pypi_index.project_serial("piwtest-pure"),)]


def test_an_unreachable_database_at_start_is_tried_again(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, caplog: pytest.LogCaptureFixture
) -> None:
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    with gazer_alone(config) as alone:
        gazer = alone.gazer
        gazer.db.timeout = 0.5
        with caplog.at_level(logging.WARNING, logger=gazer.log.name):
            gazer.discover()  # no Oracle listens yet
        assert "cannot look for changes now" in caplog.text
        assert not gazer.loaded and not gazer.pending
        assert not pypi_index.requests  # PyPI is not asked until the serials are known
        for task in alone.oracles:
            task.start()
        gazer.db.timeout = 30.0
        gazer.discover()
        assert gazer.loaded
        # its fetches have begun
        fetching = (e for chunk in gazer.fetchers.chunks.values() for e in chunk.entries)
        found = [*gazer.pending, *fetching]
        assert ("piwtest-pure", pypi_index.project_serial("piwtest-pure")) in found


def test_a_project_the_database_refuses_waits_for_the_next_look(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    master = MasterThread(config).start()
    try:
        wait_for_serial(config, pypi_index, "the first pass")
        pypi_index.clear_requests()
        pypi_index.add_version("piwtest-pure", "9" * 220)  # longer than the schema holds
        pypi_index.add_version("piwtest-cext", "5.0")
        wait_for(lambda: "the database refused piwtest-pure" in caplog.text, what="the refusal")
        # recorded in the same batch as the refused one
        wait_for(
            lambda: ("piwtest-cext", "5.0", False, False, True) in rows(config.dsn, VERSIONS),
            what="the other project",
        )
        looks_before = sum(r.path == urlsplit(config.pypi_simple).path for r in pypi_index.requests)
        time.sleep(3 * config.pypi_interval)
    finally:
        master.stop()
    looks = sum(r.path == urlsplit(config.pypi_simple).path for r in pypi_index.requests)
    fetches = sum(r.path == "/pypi/piwtest-pure/json" for r in pypi_index.requests)
    # fetched again once a look (they go on: PyPI's serial for it stays ahead), never in a loop
    assert fetches <= looks + 1, (fetches, looks, looks_before)
    assert "the database refused piwtest-pure" in caplog.text


def test_pages_wait_until_the_changes_are_recorded_and_are_kept_at_a_stop(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording a burst of PyPI's changes comes before writing their pages: the pages are
    asked for once the look's changes are all recorded, a few at a time, and those still owed
    at a stop are saved for the next start."""
    monkeypatch.setattr(cloud_gazer, "PAGES_PER_TICK", 2)
    config = follow_everything(master_dsn, tmp_path, pypi_index)
    with gazer_alone(config) as alone:
        gazer = alone.gazer
        secretary = Socket(zmq.PULL, protocols.web, context=alone.context)
        alone.sockets.append(secretary)
        secretary.bind(config.web_queue)
        for task in alone.oracles:
            task.start()

        def asked() -> list[str]:
            packages = []
            while secretary.zsock.poll(100):
                action, package = secretary.recv()
                assert action == "BOTH"
                packages.append(package)
            return packages

        for name in ("foo", "bar", "baz"):
            gazer._owe_pages(name)
        gazer.pending.append(("piwtest-pure", None))  # a look's work not yet done
        gazer.send_pages()
        assert asked() == []
        gazer.pending.clear()
        gazer.send_pages()
        assert asked() == ["foo", "bar"]
        gazer.pending.append(("piwtest-pure", None))
        gazer.pages_held_since -= cloud_gazer.PAGES_HELD  # held too long: they go anyway
        gazer.send_pages()
        assert asked() == ["baz"]
        gazer._owe_pages("qux")
    assert Database(config.dsn).take_pending_pages() == [("BOTH", "qux")]
