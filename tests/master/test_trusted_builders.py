"""Only the builders the operator trusts build (#19), over real CurveZMQ sockets: a real master,
real ``piw-slave`` processes and ``piw-trust`` as the operator runs it."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import (
    MasterThread,
    ScriptedSlave,
    SlaveProcess,
    build_result,
    configure,
    file_state,
    free_port,
    rows,
    stats,
    wait_for,
)
from piwheels import protocols
from piwheels.builder_keys import SLAVE_KEY, KeyPair, key_pair
from piwheels.master_support.config import MasterConfig
from piwheels.records.slaves import SlaveHello
from piwheels.transport import Socket
from pypi_index import LocalPyPI

BIN = Path(sys.executable).parent
WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
CONTENT = b"not really a wheel, but its hash is what counts here" * 100
HELLO = SlaveHello(
    timedelta(minutes=5), timedelta(seconds=5), "311", "cp311", "linux_x86_64", "plain", "", "",
    "", "",
)  # fmt: skip
BUILDS = "SELECT b.built_by, v.package FROM builds b JOIN versions v USING (version_id)"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    yield running
    running.stop()


def piw_trust(config: MasterConfig, *argv: str) -> None:
    """Run piw-trust as the operator does (in-process, it would set up logging its own way)."""
    command = [BIN / "piw-trust", "--key-dir", str(config.key_dir), *argv]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def slave_pair(slave: ScriptedSlave | SlaveProcess) -> KeyPair:
    assert slave.keys is not None
    return slave.keys.pair


def test_an_unknown_slave_gets_nothing_until_its_key_is_trusted(
    config: MasterConfig,
    master: MasterThread,
    python311: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "piwheels")
    slave = SlaveProcess(config, python311, tmp_path, trusted=False)
    try:
        pair = slave_pair(slave)
        refusal = f"refused a builder from 127.0.0.1: its key {pair.fingerprint} is not trusted"
        wait_for(
            lambda: refusal in caplog.text,
            timeout=60,  # a loaded machine: once in CI the refusal had not come in 30 s
            what="the master's refusal",
            context=slave.output,
        )
        wait_for(
            lambda: f"the master refused this slave's key {pair.fingerprint}" in slave.output(),
            timeout=60,  # a handshake that failed for another reason is tried again in 10 s
            what="the slave to say why",
            context=slave.output,
        )
        assert not rows(config.dsn, BUILDS)
        assert "connected:" not in caplog.text  # no slave ever got an id
        # the operator, told the key by the slave's log, trusts it: no restart of either
        piw_trust(config, "add", str(slave.key_dir / f"{SLAVE_KEY}.key"), "--label", "late")
        wait_for(lambda: rows(config.dsn, BUILDS), timeout=120, what="its build")
    finally:
        slave.stop()
    assert caplog.text.count(refusal) == 1
    assert f"key {pair.fingerprint}) connected" in caplog.text


def test_revoking_a_key_mid_build_drops_the_slave_and_another_builds_it(
    config: MasterConfig, master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "piwheels")
    first = ScriptedSlave(config, label="soon revoked")
    second = ScriptedSlave(config, label="still trusted")
    try:
        first.hello()
        build = first.wait_for_build()
        piw_trust(config, "revoke", slave_pair(first).fingerprint)
        assert first.request("BUSY", stats(), timeout=3)[0] == "TIMEOUT"  # no reply, ever
        assert f"its key {slave_pair(first).fingerprint} is no longer trusted" in caplog.text
        second_id = second.hello()
        assert second.wait_for_build() == build  # at once: the build was not at fault
        assert second.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
        assert second.send_file(CONTENT) == "DONE"
        assert second.request("SENT")[0] == "DONE"
    finally:
        first.close()
        second.close()
    assert rows(config.dsn, BUILDS) == [(second_id, "piwtest-pure")]


def test_a_client_without_curvezmq_gets_nothing_on_the_secure_queues(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any]
) -> None:
    plain = Socket(zmq.REQ, reversed(protocols.slave_driver), context=context)
    files = Socket(zmq.DEALER, reversed(protocols.file_juggler), context=context)
    try:
        plain.connect(config.slave_queue)
        plain.send("HELLO", HELLO)
        files.connect(config.file_queue)
        files.send("HELLO", 1)
        assert not plain.poll(2000) and not files.poll(100)
    finally:
        plain.close()
        files.close()
    other = ScriptedSlave(config)  # while a trusted one is served as ever
    try:
        assert other.hello() > 0
    finally:
        other.close()


def test_a_slave_told_another_master_key_talks_to_no_one(
    config: MasterConfig, master: MasterThread, python311: Path, tmp_path: Path
) -> None:
    impostor, _ = key_pair(tmp_path / "impostor", "master")
    slave = SlaveProcess(config, python311, tmp_path, "--master-key", impostor.public.decode())
    try:
        wait_for(
            lambda: "does not hold the key given with --master-key" in slave.output(),
            timeout=30,
            what="the slave to refuse the master",
        )
    finally:
        slave.stop()
    assert "connected to the master" not in slave.output()


def test_the_insecure_queues_serve_plain_slaves_only_where_opened(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "piwheels")
    config = replace(
        config,
        insecure_slave_queue=f"tcp://127.0.0.1:{free_port()}",
        insecure_file_queue=f"tcp://127.0.0.1:{free_port()}",
    )
    assert config.insecure_slave_queue and config.insecure_file_queue
    master = MasterThread(config).start()
    # as an original piwheels slave would: no keys, on the queues opened for it
    plain = ScriptedSlave(
        replace(
            config,
            slave_queue=config.insecure_slave_queue,
            file_queue=config.insecure_file_queue,
            key_dir=None,
        ),
        label="no keys",
    )
    try:
        slave_id = plain.hello()
        plain.wait_for_build()
        assert plain.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
        assert plain.send_file(CONTENT) == "DONE"
        assert plain.request("SENT")[0] == "DONE"
    finally:
        plain.close()
        master.stop()
    assert rows(config.dsn, BUILDS) == [(slave_id, "piwtest-pure")]
    assert "(no keys, 127.0.0.1, no key) connected" in caplog.text
    assert f"{config.insecure_slave_queue} is open to any builder, with no key" in caplog.text
