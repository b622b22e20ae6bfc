"""A stop is not a crash: stopped as systemd stops it, the master logs no error (#14)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from farm import MasterProcess, ScriptedSlave, configure, wait_for
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


def test_sigterm_to_the_whole_process_group(config: MasterConfig, tmp_path: Path) -> None:
    master = MasterProcess(config, tmp_path)
    try:
        slave = ScriptedSlave(config, abi="cp39")
        try:
            slave.hello()
            slave.wait_for_build()  # Cloud Gazer's fetch processes have done their work
        finally:
            slave.close()
        wait_for(lambda: "wrote the pages of piwtest-pure" in master.output(), timeout=30)
        # systemd's default: SIGTERM to every process of the service at once
        os.killpg(master.process.pid, signal.SIGTERM)
        assert master.process.wait(60) == 0
    finally:
        master.kill()
    log = master.output()
    assert " ERROR " not in log and "CRITICAL" not in log, log
    assert "restarting" not in log
    for address in (config.control_queue, config.status_queue, config.import_queue):
        assert not Path(address.removeprefix("ipc://")).exists(), f"{address} left behind"
