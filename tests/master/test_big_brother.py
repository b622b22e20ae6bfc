"""Big Brother: the farm's figures, with the output disk's, sent to the home page and to
monitors; and the search index asked for on its own interval."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from master.tasks_alone import TasksAlone, farm_alone
from piwheels import protocols
from piwheels.master.big_brother import BigBrother
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import TheOracle
from piwheels.master_support.config import MasterConfig
from piwheels.records.projects import Statistics
from piwheels.transport import Socket


@pytest.fixture
def config(master_dsn: str, tmp_path: Path) -> MasterConfig:
    return farm_alone(
        master_dsn, tmp_path, ["cp39", "cp311"], stats_interval=0.3, search_interval=0.5
    )


@pytest.fixture
def secretary(config: MasterConfig, context: zmq.Context[Any]) -> Iterator[Socket]:
    """The Secretary's end of the page requests."""
    with Socket(zmq.PULL, protocols.web, context=context) as sock:
        sock.bind(config.web_queue)
        yield sock


@pytest.fixture
def big_brother(
    config: MasterConfig, context: zmq.Context[Any], secretary: Socket, status: Socket
) -> Iterator[BigBrother]:
    with TasksAlone(config, context) as tasks:
        tasks.start(Seraph(config, context), TheOracle(config, context))
        task = BigBrother(config, context)
        tasks.start(task)
        yield task


def received(sock: Socket, count: int) -> list[tuple[str, Any]]:
    got = []
    while len(got) < count:
        assert sock.poll(5000), f"only {got} came"
        got.append(sock.recv())
    return got


def test_the_figures_go_to_the_home_page_and_to_monitors(
    config: MasterConfig, big_brother: BigBrother, secretary: Socket, status: Socket
) -> None:
    [(action, figures)] = received(status, 1)
    assert action == "STATS"
    assert isinstance(figures, Statistics)
    assert figures.queue == {"cp39": 0, "cp311": 0}
    disk = os.statvfs(config.output_path)
    assert figures.disk_total == disk.f_blocks * disk.f_frsize
    assert 0 < figures.disk_free <= figures.disk_total
    homes = [data for action, data in received(secretary, 4) if action == "HOME"]
    assert homes and homes[0] == figures
    assert big_brother.latest is not None


def test_the_search_index_is_asked_for_on_its_own_interval(
    big_brother: BigBrother, secretary: Socket
) -> None:
    actions = [action for action, _ in received(secretary, 8)]
    assert "SEARCH" in actions
    # the home page every 0.3 s, the search index every 0.5 s
    assert actions.count("HOME") > actions.count("SEARCH")


def test_an_output_disk_it_cannot_measure_sends_nothing(
    config: MasterConfig, context: zmq.Context[Any], secretary: Socket, status: Socket
) -> None:
    config.output_path = config.output_path / "gone"
    config.search_interval = 3600.0
    with TasksAlone(config, context) as tasks:
        tasks.start(Seraph(config, context), TheOracle(config, context))
        tasks.start(BigBrother(config, context))
        assert not status.poll(1000)
        assert not secretary.poll(100)
