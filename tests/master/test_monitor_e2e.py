"""piw-monitor against a real master: it shows a slave that connects, and its pause reaches it.

The master runs in a thread on a real database (as in test_status.py); the monitor runs headless
under Textual's pilot; the slave is scripted so the test decides when it says IDLE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from farm import MasterThread, ScriptedSlave, configure
from piwheels.master_support.config import MasterConfig
from piwheels.monitor.app import MonitorApp
from piwheels.monitor.widgets import SlaveTable
from pypi_index import LocalPyPI


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    yield running
    running.stop()


async def until(pilot: Pilot[Any], check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def test_the_monitor_shows_a_slave_and_pauses_the_master(
    config: MasterConfig, master: MasterThread
) -> None:
    slave = ScriptedSlave(config, abi="cp39", label="pi-e2e")

    async def test() -> None:
        app = MonitorApp(config.status_queue, config.control_queue)

        def master_state() -> str | None:
            return None if app.master is None else app.master.state

        async with app.run_test(size=(140, 36)) as pilot:
            await until(pilot, lambda: master_state() == "running", "the master's state")
            slave_id = slave.hello()
            table = app.query_one(SlaveTable)
            await until(pilot, lambda: table.row_count == 1, "the slave's row")
            cells = [str(cell) for cell in table.get_row(str(slave_id))]
            # its builder: the label its key was trusted under (the test trusts it so)
            assert cells[:5] == [str(slave_id), "pi-e2e", "pi-e2e", "cp39", "hello"]

            await pilot.press("p")
            await until(pilot, lambda: master_state() == "paused", "the pause")
            # The Slave Driver hears PAUSE on its own queue: the next IDLE or the one after.
            answers = []
            for _ in range(20):
                answers.append(slave.idle()[0])
                if answers[-1] == "SLEEP":
                    break
                await pilot.pause(0.1)
            assert answers[-1] == "SLEEP", answers
            await until(pilot, lambda: app.slaves[slave_id].state == "sleeping", "sleeping")

            await pilot.press("r")
            await until(pilot, lambda: master_state() == "running", "the resume")
            await pilot.press("q")
        # Quitting the monitor leaves the master running: the slave is given work.
        assert master.thread.is_alive()

    try:
        asyncio.run(asyncio.wait_for(test(), timeout=60))
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
    finally:
        slave.close()
