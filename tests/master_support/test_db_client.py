"""The typed client of the Oracles: answers as their declared types, errors with their kind,
and a request no Oracle answers given up after its timeout, the next one asked afresh."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from master.tasks_alone import TasksAlone, farm_alone
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.protocols.messages import PageRequest
from piwheels.records.builds import BuildResult, PackageVersion, QueueSnapshot


@pytest.fixture
def config(master_dsn: str, tmp_path: Path) -> MasterConfig:
    return farm_alone(master_dsn, tmp_path, ["cp39", "cp311"])


@pytest.fixture
def tasks(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[TasksAlone]:
    with TasksAlone(config, context) as alone:
        alone.start(Seraph(config, context))
        yield alone


def test_answers_come_as_their_declared_types(
    config: MasterConfig, context: zmq.Context[Any], tasks: TasksAlone
) -> None:
    tasks.start(TheOracle(config, context))
    client = DbClient(config.oracle_queue, context, timeout=10)
    try:
        client.add_by_hand("foo", "1.0", "")
        queue = client.get_queue(10)
        assert type(queue) is QueueSnapshot
        assert type(queue.heads["cp39"][0]) is PackageVersion
        result = BuildResult(False, timedelta(seconds=1), "it broke", [])
        build_id = client.log_build(1, "foo", "1.0", "cp39", result)
        assert type(build_id) is int
        assert client.retry_failed("foo", "1.0", None) == 1
        client.save_pending_pages([PageRequest("BOTH", "foo")])
        assert client.take_pending_pages() == [("BOTH", "foo")]
        assert client.get_file_hashes([]) == {}
        assert client.reserve_slave_ids() + 1000 == client.reserve_slave_ids()
    finally:
        client.close()


def test_more_pages_than_a_message_holds_are_all_kept(
    config: MasterConfig, context: zmq.Context[Any], tasks: TasksAlone
) -> None:
    # a Secretary stopping with a page of each of PyPI's projects held (as after a lost disk)
    pages = [PageRequest("BOTH", f"project-{n}") for n in range(100_001)]
    tasks.start(TheOracle(config, context))
    client = DbClient(config.oracle_queue, context, timeout=60)
    try:
        client.save_pending_pages(pages)
        assert len(client.take_pending_pages()) == len(pages)
    finally:
        client.close()


def test_an_error_carries_its_kind(
    config: MasterConfig, context: zmq.Context[Any], tasks: TasksAlone
) -> None:
    tasks.start(TheOracle(config, context))
    client = DbClient(config.oracle_queue, context, timeout=10)
    try:
        with pytest.raises(DatabaseError, match="no such package: foo") as missing:
            client.set_yanked("foo", "1.0", True)
        assert missing.value.kind == "not-found"
    finally:
        client.close()


def test_a_request_no_oracle_answers_times_out_and_the_next_is_asked_afresh(
    config: MasterConfig, context: zmq.Context[Any], tasks: TasksAlone
) -> None:
    client = DbClient(config.oracle_queue, context, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseError, match=r"GETSERIAL: no reply .* within 0\.3s") as late:
            client.get_pypi_serial()
        assert late.value.kind == "timeout"
        assert 0.3 <= time.monotonic() - started < 5
        # an Oracle comes: the next request is answered (a REQ socket stuck waiting for its
        # reply would refuse to send it)
        tasks.start(TheOracle(config, context))
        client.timeout = 10
        client.set_pypi_serial(7)
        assert client.get_pypi_serial() == 7
    finally:
        client.close()
