"""After any crash the farm is whole again (#21): each test kills something at the worst
moment, then checks what users and operators see."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from farm import (
    MasterProcess,
    MasterThread,
    ScriptedSlave,
    build_result,
    configure,
    file_state,
    make_config,
    rows,
    wait_for,
)
from piwheels.db import web_output
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.master_support.config import MasterConfig
from piwheels.web.layout import log_path
from pypi_index import LocalPyPI

WHEEL = "piwtest_pure-1.0-py3-none-any.whl"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


@pytest.fixture
def processes() -> Iterator[list[MasterProcess]]:
    started: list[MasterProcess] = []
    yield started
    for master in started:
        master.kill()


def index_lists(config: MasterConfig, filename: str) -> bool:
    index = config.output_path / "simple" / "piwtest-pure" / "index.json"
    try:
        return filename in {f["filename"] for f in json.loads(index.read_text())["files"]}
    except (OSError, ValueError):
        return False


def built_ids(page: Path) -> set[int]:
    try:
        versions = json.loads(page.read_text())["versions"]
    except (OSError, ValueError):
        return set()
    return {build["build_id"] for version in versions for build in version["builds"]}


def test_pages_of_a_build_recorded_just_before_a_kill(
    config: MasterConfig, tmp_path: Path, processes: list[MasterProcess]
) -> None:
    content = os.urandom(50_000)
    processes.append(MasterProcess(config, tmp_path))
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.publish(WHEEL, content)
        processes[0].kill()  # the page request is a second old: still held by the Secretary
    finally:
        slave.close()
    assert rows(config.dsn, "SELECT filename FROM files") == [(WHEEL,)]
    assert not index_lists(config, WHEEL)
    processes.append(MasterProcess(config, tmp_path))
    wait_for(lambda: index_lists(config, WHEEL), timeout=60, what="the index to list the wheel")
    [(build_id,)] = rows(config.dsn, "SELECT build_id FROM builds")
    page = config.output_path / "project" / "piwtest-pure" / "json" / "index.json"
    wait_for(lambda: build_id in built_ids(page), timeout=30, what="the build on its page")
    log = config.output_path / log_path(build_id)
    wait_for(log.exists, timeout=30, what="the build's log")
    assert rows(config.dsn, "SELECT count(*) FROM pending_pages WHERE kind = 'BOTH'") == [(0,)]


def test_a_transfer_cut_by_a_kill_leaves_nothing_behind(
    config: MasterConfig, tmp_path: Path, processes: list[MasterProcess]
) -> None:
    content = os.urandom(3 * 1024 * 1024)  # several chunks: the kill comes after the first
    processes.append(MasterProcess(config, tmp_path))
    slave = ScriptedSlave(config, abi="cp39")
    incoming = config.incoming_dir
    try:
        slave.hello()
        slave.wait_for_build()
        assert slave.request("BUILT", build_result(file_state(WHEEL, content)))[0] == "SEND"
        sender = slave.file_socket()
        sender.send("HELLO", slave.slave_id)
        assert sender.poll(10_000)
        _, (offset, length) = sender.recv()
        sender.send("CHUNK", (offset, content[offset : offset + length]))
        wait_for(lambda: list(incoming.glob(".*.part")), timeout=10, what="the transfer")
        processes[0].kill()
        sender.close()
    finally:
        slave.close()
    assert list(incoming.glob(".*.part"))
    processes.append(MasterProcess(config, tmp_path))
    wait_for(lambda: not list(incoming.glob(".*.part")), timeout=30, what="the leftover gone")
    assert "removed 1 unfinished transfers left by an earlier master" in processes[1].output()


def test_pages_asked_for_while_the_database_is_down(
    config: MasterConfig, pg_server: EmbeddedPostgres
) -> None:
    config.page_delay = 3.0  # the request reaches the page writer while the database is down
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.publish(WHEEL, os.urandom(50_000))
        pg_server.stop()
        time.sleep(config.page_delay + 2)
        pg_server.start()
        wait_for(lambda: index_lists(config, WHEEL), timeout=60, what="the index to list it")
    finally:
        slave.close()
        master.stop()


def embedded_config(tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    """A farm whose master runs its own PostgreSQL (in tmp_path/data)."""
    (tmp_path / "www").mkdir()
    return make_config(
        "",
        tmp_path / "www",
        tmp_path,
        ["cp39"],
        pypi_simple=pypi_index.simple_url,
        pypi_json=pypi_index.json_url,
        packages=["piwtest-pure"],
    )


def test_the_embedded_database_killed(
    tmp_path: Path, pypi_index: LocalPyPI, processes: list[MasterProcess]
) -> None:
    data = tmp_path / "data"
    config = embedded_config(tmp_path, pypi_index)
    processes.append(MasterProcess(config, tmp_path, "--data-dir", str(data)))
    server = EmbeddedPostgres(data / "postgres")
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        assert slave.wait_for_build(timeout=60) == ("piwtest-pure", "1.0")
        first = server.pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: server.pid() not in (None, first), timeout=60, what="a new PostgreSQL")
        # the farm carries on: the build in hand is recorded on the new server (or, caught
        # while the Oracles reconnect, abandoned, queued again and handed out again)
        content = os.urandom(50_000)
        for _ in range(5):
            reply = slave.request("BUILT", build_result(file_state(WHEEL, content)), timeout=60)
            if reply[0] == "SEND":
                break
            assert slave.wait_for_build(timeout=60) == ("piwtest-pure", "1.0")
        assert slave.send_file(content) == "DONE"
        assert slave.request("SENT", timeout=60)[0] == "DONE"
    finally:
        slave.close()
    assert rows(server.dsn(), "SELECT filename FROM files") == [(WHEEL,)]
    assert processes[0].process.poll() is None
    assert processes[0].stop() == 0
    assert "is not running; starting it again" in processes[0].output()


def test_an_embedded_database_that_cannot_start_again_stops_the_master(
    tmp_path: Path, pypi_index: LocalPyPI, processes: list[MasterProcess]
) -> None:
    data = tmp_path / "data"
    config = embedded_config(tmp_path, pypi_index)
    master = MasterProcess(config, tmp_path, "--data-dir", str(data))
    processes.append(master)
    server = EmbeddedPostgres(data / "postgres")
    wait_for(lambda: "master running" in master.output(), timeout=60, what="the master")
    pid = server.pid()
    assert pid is not None
    (server.data_dir / "PG_VERSION").write_text("7\n")  # a cluster no server can run
    os.kill(pid, signal.SIGKILL)
    assert master.process.wait(120) == 1
    assert "stopping the master" in master.output()
    assert master.output().count("starting it again") == 5


def test_an_index_missing_recorded_files_is_written_at_start(
    config: MasterConfig,
    fresh_database: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(web_output, "PUBLISHED_PAGE", 1)  # the projects are read in pages
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.publish(WHEEL, os.urandom(50_000))
        wait_for(lambda: index_lists(config, WHEEL), timeout=30, what="the index")
    finally:
        slave.close()
        master.stop()
    # whatever lost it (a disk restored from an old backup, pages from an older version)
    index = config.output_path / "simple" / "piwtest-pure" / "index.json"
    index.unlink()
    with psycopg.connect(fresh_database) as conn:
        conn.execute("DELETE FROM pending_pages")
    master = MasterThread(config).start()
    try:
        wait_for(lambda: index_lists(config, WHEEL), timeout=30, what="the index written again")
    finally:
        master.stop()
    assert "1 projects' indexes miss recorded files (piwtest-pure)" in caplog.text
