"""A slave is untrusted: whatever it sends, the master logs and refuses, and keeps working."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import (
    MasterThread,
    ScriptedSlave,
    build_result,
    configure,
    file_state,
    rows,
    stats,
    wait_for,
)
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI

WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
CONTENT = os.urandom(3 * 1024 * 1024 + 123)  # several chunks


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"])


@pytest.fixture
def slave(config: MasterConfig, master: MasterThread) -> ScriptedSlave:
    scripted = ScriptedSlave(config, abi="cp39")
    yield scripted
    scripted.close()


@pytest.fixture
def master(config: MasterConfig) -> MasterThread:
    running = MasterThread(config).start()
    yield running
    running.stop()


def builds(dsn: str) -> list[tuple]:
    return rows(
        dsn,
        "SELECT v.package, v.version, b.abi_tag, b.status, o.output FROM builds b "
        "JOIN versions v USING (version_id) JOIN output o USING (build_id)",
    )


def test_corrupted_chunk_is_fetched_again(config: MasterConfig, slave: ScriptedSlave) -> None:
    slave.hello()
    assert slave.wait_for_build() == ("piwtest-pure", "1.0")
    state = file_state(WHEEL, CONTENT)
    assert slave.request("BUILT", build_result(state)) == ("SEND", WHEEL)
    assert slave.send_file(CONTENT, corrupt_first_chunk=True) == "DONE"
    # the hash did not match: the master asks for the same file again
    assert slave.request("SENT") == ("SEND", WHEEL)
    assert slave.send_file(CONTENT) == "DONE"
    assert slave.request("SENT")[0] == "DONE"
    path = config.output_path / "simple" / "piwtest-pure" / WHEEL
    assert hashlib.sha256(path.read_bytes()).hexdigest() == state.filehash
    assert rows(config.dsn, "SELECT filename, filehash FROM files") == [(WHEEL, state.filehash)]
    assert not list(config.incoming_dir.iterdir())


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("../../../evil-1.0-py3-none-any.whl", "holds a path"),
        ("piwtest_pure-1.0-py3-none-any.whl/../../x.whl", "holds a path"),
        ("otherproject-1.0-py3-none-any.whl", "not piwtest-pure"),
        ("piwtest_pure-6.6-py3-none-any.whl", "not 1.0"),
        ("piwtest_pure-1.0.tar.gz", "not a wheel filename"),
    ],
)
def test_hostile_filename_is_refused(
    config: MasterConfig,
    slave: ScriptedSlave,
    filename: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slave.hello()
    slave.wait_for_build()
    state = file_state(WHEEL, b"x" * 100)._replace(filename=filename)
    # nothing to fetch: the build is recorded as failed, with the refusal in its log
    assert slave.request("BUILT", build_result(state))[0] == "DONE"
    [(package, version, abi, status, output)] = builds(config.dsn)
    assert (package, version, abi, status) == ("piwtest-pure", "1.0", "cp39", False)
    assert reason in output
    assert reason in caplog.text
    assert rows(config.dsn, "SELECT count(*) FROM files") == [(0,)]
    assert not (config.output_path.parent / "evil-1.0-py3-none-any.whl").exists()


def test_malformed_message_is_refused_and_the_master_carries_on(
    config: MasterConfig, slave: ScriptedSlave, caplog: pytest.LogCaptureFixture
) -> None:
    slave.hello()
    slave.send_raw(b"\xff\x00 this is not CBOR")
    assert not slave.sock.poll(1000)  # refused: no reply
    assert "refused a message" in caplog.text
    other = ScriptedSlave(config, abi="cp39", label="well-behaved")
    try:
        other.hello()
        assert other.wait_for_build() == ("piwtest-pure", "1.0")
    finally:
        other.close()


def test_out_of_order_message_is_refused(
    config: MasterConfig, slave: ScriptedSlave, caplog: pytest.LogCaptureFixture
) -> None:
    slave.hello()
    assert slave.request("BUILT", build_result(), timeout=1)[0] == "TIMEOUT"
    assert "broke the protocol" in caplog.text
    assert builds(config.dsn) == []


def test_message_from_an_unknown_slave_is_ignored(
    slave: ScriptedSlave, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert slave.request("IDLE", stats(), timeout=1)[0] == "TIMEOUT"
    assert "unknown slave" in caplog.text


def test_published_file_is_never_replaced(config: MasterConfig, master: MasterThread) -> None:
    specific = "piwtest_pure-1.0-cp39-cp39-linux_x86_64.whl"
    first = ScriptedSlave(config, abi="cp39")
    try:
        first.hello()
        first.wait_for_build()
        original = file_state(specific, b"original bytes")
        assert first.request("BUILT", build_result(original)) == ("SEND", specific)
        first.send_file(b"original bytes")
        assert first.request("SENT")[0] == "DONE"
    finally:
        first.close()
    # cp39-specific: the version moves on to cp311, whose slave claims the same filename
    second = ScriptedSlave(config, abi="cp311")
    try:
        second.hello()
        assert second.wait_for_build() == ("piwtest-pure", "1.0")
        forged = file_state(specific, b"different bytes!")
        assert second.request("BUILT", build_result(forged))[0] == "DONE"
    finally:
        second.close()
    path = config.output_path / "simple" / "piwtest-pure" / specific
    assert path.read_bytes() == b"original bytes"
    assert rows(config.dsn, "SELECT filehash FROM files") == [(original.filehash,)]
    [(_, _, _, status, output)] = [b for b in builds(config.dsn) if b[2] == "cp311"]
    assert "published files never change" in output
    assert status is False  # what it made cannot be published: not a success with no file


def test_nearly_full_disk_makes_slaves_sleep(config: MasterConfig, slave: ScriptedSlave) -> None:
    slave.hello()
    wait_for(lambda: rows(config.dsn, "SELECT count(*) FROM build_queue") == [(1,)])
    config.min_free_space = 1 << 62  # the running master reads its own config object
    for _ in range(3):
        assert slave.idle()[0] == "SLEEP"
    config.min_free_space = 0
    assert slave.wait_for_build() == ("piwtest-pure", "1.0")


def test_file_bigger_than_the_free_space_is_not_fetched(
    config: MasterConfig, slave: ScriptedSlave
) -> None:
    slave.hello()
    slave.wait_for_build()
    free = os.statvfs(config.output_path)
    # a 2 GiB wheel (never fetched: only its reported size matters) on a disk allowed to lose
    # 1 GiB more: wide margins, since other programs change the free space while this runs
    config.min_free_space = free.f_bavail * free.f_frsize - (1 << 30)
    state = file_state(WHEEL, CONTENT)._replace(filesize=2 << 30)
    assert slave.request("BUILT", build_result(state))[0] == "DONE"
    # not recorded: the version stays queued for when there is room
    assert builds(config.dsn) == []
    assert rows(config.dsn, "SELECT count(*) FROM build_queue") == [(1,)]
    assert not list(config.output_path.rglob("*.part"))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a really full disk, not just a threshold."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_loses_nothing(
    master_dsn: str,
    tmp_path: Path,
    pypi_index: LocalPyPI,
    tiny_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])
    config.output_path = tiny_disk
    config.min_free_space = 0  # let the transfer itself meet the full disk
    big = os.urandom(6 * 1024 * 1024)  # more than the disk holds
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        slave.wait_for_build()
        assert slave.request("BUILT", build_result(file_state(WHEEL, big)))[0] == "DONE"
        # not recorded, nothing half-written, and the master still hands out the build
        assert builds(config.dsn) == []
        assert not list(tiny_disk.rglob("*.part")) and not list(tiny_disk.rglob("*.whl"))
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
    finally:
        slave.close()
        master.stop()
    assert "nearly full" in caplog.text or "no room" in caplog.text


def test_slave_ids_carry_on_after_a_master_restart(config: MasterConfig) -> None:
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        first_id = slave.hello()  # recording nothing: its id is still never given again
    finally:
        slave.close()
        master.stop()
    master = MasterThread(config).start()
    other = ScriptedSlave(config, abi="cp39")
    try:
        assert other.hello() > first_id  # built_by keeps naming one slave
    finally:
        other.close()
        master.stop()
