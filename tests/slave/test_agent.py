"""The slave's protocol loop against a master the test plays itself, over real ZeroMQ sockets.

The test binds two ROUTER sockets on 127.0.0.1 (the Slave Driver and the File Juggler), runs a
:class:`PiwSlave` in a thread, and answers each of its messages by hand. Builds are real: a tiny
project from the local index, or pip stuck on an index that never answers when the test needs a
build that runs until it is killed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
import zmq

from piwheels import protocols
from piwheels.builder_keys import ClientKeys
from piwheels.protocols import NO_DATA
from piwheels.records.builds import BuildResult
from piwheels.records.slaves import SlaveHello, SlaveStats
from piwheels.slave.agent import PiwSlave, SlaveConfig, _trim
from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from piwheels.slave.sandbox import Sandbox, make_sandbox
from piwheels.transport import Socket
from refusing_server import RefusingServer

WAIT = 10.0  # seconds to wait for a message that should come promptly


class FakeMaster:
    """The master's two sockets, driven step by step by a test."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.driver = Socket(zmq.ROUTER, protocols.slave_driver, context=context)
        port = self.driver.zsock.bind_to_random_port("tcp://127.0.0.1")
        self.slave_queue = f"tcp://127.0.0.1:{port}"
        self.juggler = Socket(zmq.ROUTER, protocols.file_juggler, context=context)
        # as the File Juggler's: a slave's next transfer reuses its routing id, and may connect
        # before the last one's connection is seen to close (under load it did, and its HELLO
        # was dropped)
        self.juggler.zsock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        port = self.juggler.zsock.bind_to_random_port("tcp://127.0.0.1")
        self.file_queue = f"tcp://127.0.0.1:{port}"
        self.address = b""  # the slave's REQ socket, as last heard from
        self.file_address = b""

    def expect(self, action: str, timeout: float = WAIT) -> Any:
        """The data of the slave's next message, which must be *action*."""
        assert self.driver.poll(timeout * 1000), f"no {action} within {timeout}s"
        self.address, got, data = self.driver.recv_from()
        assert got == action, f"expected {action}, got {got} {data!r}"
        return data

    def reply(self, action: str, data: Any = NO_DATA) -> None:
        self.driver.send_to(self.address, action, data)

    def expect_file(self, action: str, timeout: float = WAIT) -> Any:
        assert self.juggler.poll(timeout * 1000), f"no {action} on the file queue in {timeout}s"
        self.file_address, got, data = self.juggler.recv_from()
        assert got == action, f"expected {action}, got {got} {data!r}"
        return data

    def fetch(self, offset: int, length: int) -> None:
        self.juggler.send_to(self.file_address, "FETCH", (offset, length))

    def close(self) -> None:
        self.driver.close()
        self.juggler.close()


class SlaveThread:
    """A PiwSlave running in a thread, and whatever its run() returned or raised."""

    def __init__(self, slave: PiwSlave) -> None:
        self.slave = slave
        self.returned: int | None = None
        self.raised: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="slave", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.returned = self.slave.run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.raised = exc

    def join(self, timeout: float = WAIT) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the slave did not stop"
        if self.raised is not None:
            raise self.raised
        return self.returned


@pytest.fixture(scope="session")
def interpreter(python311: Path) -> Interpreter:
    return inspect_interpreter(python311)


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    # A short grace: pip dies on SIGTERM at once; the tests must not wait 5 s for SIGKILL.
    return make_sandbox(grace=1.0)


@pytest.fixture
def master(context: zmq.Context[Any]) -> Iterator[FakeMaster]:
    fake = FakeMaster(context)
    yield fake
    fake.close()


@pytest.fixture
def hanging_index() -> Iterator[str]:
    """An index that accepts connections and never answers: pip waits there until killed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/simple/"


class Recorder:
    """A builder factory for PiwSlave that keeps every Build it starts, for inspection."""

    def __init__(self, interpreter: Interpreter, sandbox: Sandbox, work_root: Path) -> None:
        self.interpreter = interpreter
        self.sandbox = sandbox
        self.work_root = work_root
        self.builds: list[Build] = []

    def __call__(self, index_url: str) -> Builder:
        builder = Builder(
            self.interpreter,
            index_url,
            timeout=timedelta(minutes=5),
            work_root=self.work_root,
            sandbox=self.sandbox,
        )
        start = builder.start

        def recording_start(package: str, version: str) -> Build:
            build = start(package, version)
            self.builds.append(build)
            return build

        builder.start = recording_start  # type: ignore[method-assign]
        return builder


def slave_config(
    slave_queue: str,
    file_queue: str,
    work_root: Path,
    *,
    master_timeout: float = WAIT,
    keys: ClientKeys | None = None,
) -> SlaveConfig:
    return SlaveConfig(
        slave_queue=slave_queue,
        file_queue=file_queue,
        label="test-slave",
        work_root=work_root,
        build_timeout=timedelta(minutes=5),
        master_timeout=timedelta(seconds=master_timeout),
        busy_interval=timedelta(seconds=0.2),
        sleep_interval=timedelta(seconds=0.2),
        keys=keys,
    )


def make_slave(
    master: FakeMaster,
    interpreter: Interpreter,
    sandbox: Sandbox,
    work_root: Path,
    *,
    master_timeout: float = WAIT,
) -> tuple[PiwSlave, Recorder]:
    config = slave_config(
        master.slave_queue, master.file_queue, work_root, master_timeout=master_timeout
    )
    recorder = Recorder(interpreter, sandbox, work_root)
    return PiwSlave(config, interpreter, builder_factory=recorder), recorder


def transfer(master: FakeMaster, size: int, chunk: int) -> bytes:
    """Play the File Juggler: every FETCH of the file sent at once, the chunks in any order."""
    offsets = list(range(0, size, chunk))
    for offset in reversed(offsets):
        master.fetch(offset, min(chunk, size - offset))
    received: dict[int, bytes] = {}
    while len(received) < len(offsets):
        offset, data = master.expect_file("CHUNK")
        assert offset not in received
        received[offset] = data
    master.juggler.send_to(master.file_address, "DONE")
    return b"".join(received[offset] for offset in offsets)


# -- the whole conversation -------------------------------------------------------------------


def test_build_and_send(master, interpreter, sandbox, pypi_index, tmp_path, caplog):
    caplog.set_level(logging.INFO, "piwheels")
    slave, recorder = make_slave(master, interpreter, sandbox, tmp_path / "work", master_timeout=2)
    connections = master.juggler.zsock.get_monitor_socket(zmq.EVENT_ACCEPTED)
    runner = SlaveThread(slave)

    hello = master.expect("HELLO")
    assert isinstance(hello, SlaveHello)
    assert (hello.abi_tag, hello.py_version_tag) == ("cp311", "311")
    assert hello.platform_tag == interpreter.platform_tag
    assert (hello.label, hello.build_timeout) == ("test-slave", timedelta(minutes=5))
    assert hello.master_timeout == timedelta(seconds=2)
    assert hello.os_name
    master.reply("ACK", (7, pypi_index.simple_url))

    stats = master.expect("IDLE")
    assert isinstance(stats, SlaveStats)
    assert stats.timestamp.tzinfo is not None
    assert 0 < stats.disk_free <= stats.disk_total
    assert 0 < stats.mem_free <= stats.mem_total
    master.reply("SLEEP")
    slept = time.monotonic()
    master.expect("IDLE")
    assert time.monotonic() - slept >= 0.2
    master.reply("BUILD", ("piwtest-pure", "1.0"))

    # BUSY at once, then every busy interval, until the build is over; BUILT answers a CONT.
    master.expect("BUSY")
    busy = 1
    while True:
        master.reply("CONT")
        assert master.driver.poll(120_000), "the build never finished"
        master.address, action, data = master.driver.recv_from()
        if action == "BUILT":
            break
        assert action == "BUSY"
        busy += 1
    assert busy >= 2  # a real build takes longer than one 0.2 s interval
    result: BuildResult = data
    assert result.status, result.output
    [wheel] = result.files
    assert wheel.filename == "piwtest_pure-1.0-py3-none-any.whl"
    assert "piwtest-pure" in result.output

    # First SEND: the File Juggler hears HELLO and then stays silent; after the master timeout
    # the slave gives up and says SENT, leaving the master to decide.
    master.reply("SEND", wheel.filename)
    assert master.expect_file("HELLO") == 7
    started = time.monotonic()
    master.expect("SENT", timeout=WAIT)
    assert time.monotonic() - started >= 1.5

    # SEND again: several FETCHes in flight, answered chunk by chunk, plus one beyond the end of
    # the file, which the slave refuses.
    master.reply("SEND", wheel.filename)
    assert master.expect_file("HELLO") == 7
    master.fetch(wheel.filesize - 10, 100)
    content = transfer(master, wheel.filesize, chunk=1000)
    assert len(content) == wheel.filesize
    assert hashlib.sha256(content).hexdigest() == wheel.filehash
    master.expect("SENT")
    assert "refusing FETCH" in caplog.text
    assert not master.juggler.poll(0)  # nothing was sent for the refused FETCH

    # SEND once more: after a transfer that ended in DONE, the next goes by the same file
    # connection (the one after the silent File Juggler was dropped for a new one).
    master.reply("SEND", wheel.filename)
    assert master.expect_file("HELLO") == 7
    assert transfer(master, wheel.filesize, chunk=wheel.filesize) == content
    master.expect("SENT")
    accepted = 0
    while connections.poll(0):
        connections.recv_multipart()
        accepted += 1
    assert accepted == 2
    master.juggler.zsock.disable_monitor()  # first: libzmq would go on sending it events
    connections.close(linger=0)

    # The File Juggler's end of it is cut (as the master's QueueGuard does): libzmq connects
    # again, and the next file goes by the new connection.
    endpoint = master.juggler.zsock.get_string(zmq.LAST_ENDPOINT)
    master.juggler.zsock.unbind(endpoint)
    assert not master.juggler.poll(200)  # (a socket ends its connections as it is polled)
    master.juggler.zsock.bind(endpoint)
    assert not master.juggler.poll(500)  # the slave's connection dropped, and libzmq made another
    master.reply("SEND", wheel.filename)
    assert master.expect_file("HELLO") == 7
    assert transfer(master, wheel.filesize, chunk=wheel.filesize) == content
    master.expect("SENT")

    master.reply("DONE")
    master.expect("IDLE")
    [build] = recorder.builds
    assert not build.build_dir.exists()  # everything of the build is gone once DONE came
    master.reply("DIE")
    master.expect("BYE")
    assert runner.join() == 0


# -- the master cancels, goes quiet, or talks nonsense --------------------------------------


def test_done_during_build_kills_it(master, interpreter, sandbox, hanging_index, tmp_path):
    slave, recorder = make_slave(master, interpreter, sandbox, tmp_path)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    master.reply("ACK", (1, hanging_index))
    master.expect("IDLE")
    master.reply("BUILD", ("piwtest-pure", "1.0"))
    master.expect("BUSY")
    master.reply("CONT")
    master.expect("BUSY")
    [build] = recorder.builds
    assert build.is_alive()
    master.reply("DONE")
    master.expect("IDLE")
    assert not build.is_alive()
    assert not build.result.status
    assert not build.build_dir.exists()
    slave.stop()
    master.reply("SLEEP")
    master.expect("BYE")
    assert runner.join() == 0


def test_silent_master_means_hello_again(master, interpreter, sandbox, hanging_index, tmp_path):
    slave, recorder = make_slave(master, interpreter, sandbox, tmp_path, master_timeout=0.5)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    first = master.address
    master.reply("ACK", (1, hanging_index))
    master.expect("IDLE")
    master.reply("BUILD", ("piwtest-pure", "1.0"))
    master.expect("BUSY")
    silent = time.monotonic()
    # No answer to BUSY: after the master timeout the build is killed and cleaned up, and the
    # slave introduces itself again, on a new socket (a REQ that missed a reply is stuck).
    master.expect("HELLO")
    assert time.monotonic() - silent >= 0.5
    assert master.address != first
    [build] = recorder.builds
    assert not build.is_alive()
    assert not build.build_dir.exists()
    # A new conversation works as the first did.
    master.reply("ACK", (2, hanging_index))
    master.expect("IDLE")
    master.reply("DIE")
    master.expect("BYE")
    assert runner.join() == 0


@pytest.mark.parametrize(
    ("when", "answer"),
    [
        pytest.param("HELLO", b"\xff\x00 not CBOR", id="garbage"),
        pytest.param("HELLO", ("SLEEP", NO_DATA), id="SLEEP-to-HELLO"),
        pytest.param("IDLE", ("ACK", (1, "http://127.0.0.1:9/simple/")), id="ACK-to-IDLE"),
        pytest.param("IDLE", ("CONT", NO_DATA), id="CONT-to-IDLE"),
        pytest.param("IDLE", ("SEND", "nothing.whl"), id="SEND-to-IDLE"),
        pytest.param("IDLE", cbor2.dumps(["BUILD", "piwtest-pure"]), id="BUILD-short"),
    ],
)
def test_confused_master_means_hello_again(master, interpreter, sandbox, tmp_path, when, answer):
    slave, _ = make_slave(master, interpreter, sandbox, tmp_path)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    if when == "IDLE":
        master.reply("ACK", (1, "http://127.0.0.1:9/simple/"))
        master.expect("IDLE")
    first = master.address
    if isinstance(answer, bytes):
        master.driver.send_raw_to(master.address, answer)
    else:
        master.reply(*answer)
    master.expect("HELLO")
    assert master.address != first
    master.reply("DIE")
    master.expect("BYE")
    assert runner.join() == 0


def test_send_of_a_file_not_built(master, interpreter, sandbox, pypi_index, tmp_path):
    slave, recorder = make_slave(master, interpreter, sandbox, tmp_path)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    master.reply("ACK", (1, pypi_index.simple_url))
    master.expect("IDLE")
    master.reply("BUILD", ("piwtest-broken", "1.0"))
    master.expect("BUSY")
    while True:
        master.reply("CONT")
        assert master.driver.poll(120_000)
        master.address, action, data = master.driver.recv_from()
        if action == "BUILT":
            break
    assert not data.status
    master.reply("SEND", "piwtest_broken-1.0-py3-none-any.whl")
    master.expect("HELLO")
    assert not recorder.builds[0].build_dir.exists()
    slave.stop()
    master.reply("ACK", (2, pypi_index.simple_url))
    master.expect("BYE")
    assert runner.join() == 0


def test_build_log_trimmed_to_fit():
    text = "é" * 1000 + "middle" + "ü" * 1000  # two UTF-8 bytes a character
    trimmed = _trim(text, 1000)
    assert len(trimmed.encode()) <= 1000
    assert trimmed.startswith("é" * 100)
    assert trimmed.endswith("ü" * 100)
    assert "bytes omitted" in trimmed
    assert _trim("short", 1000) == "short"


# -- stopping ---------------------------------------------------------------------------------


def test_stop_during_a_build(master, interpreter, sandbox, hanging_index, tmp_path):
    slave, recorder = make_slave(master, interpreter, sandbox, tmp_path)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    master.reply("ACK", (1, hanging_index))
    master.expect("IDLE")
    master.reply("BUILD", ("piwtest-pure", "1.0"))
    master.expect("BUSY")
    master.reply("CONT")
    slave.stop()
    master.expect("BYE")
    assert runner.join() == 0
    [build] = recorder.builds
    assert not build.is_alive()
    assert not build.build_dir.exists()


def test_stop_while_waiting_for_the_master(master, interpreter, sandbox, tmp_path):
    slave, _ = make_slave(master, interpreter, sandbox, tmp_path)
    runner = SlaveThread(slave)
    master.expect("HELLO")
    master.reply("ACK", (1, "http://127.0.0.1:9/simple/"))
    master.expect("IDLE")
    slave.stop()
    # The REQ socket owes the master a reply before it can say BYE; it waits a little for it.
    time.sleep(0.2)
    master.reply("SLEEP")
    master.expect("BYE")
    assert runner.join() == 0


def test_a_refused_key_is_said_and_tried_again_later(
    refusing_server: RefusingServer,
    interpreter: Interpreter,
    sandbox: Sandbox,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = refusing_server.address
    # the refusal is heard, not waited out
    config = slave_config(address, address, tmp_path, master_timeout=300, keys=refusing_server.keys)
    slave = PiwSlave(config, interpreter, sandbox=sandbox)
    runner = SlaveThread(slave)
    try:
        said = f"the master refused this slave's key {refusing_server.keys.pair.fingerprint}"
        deadline = time.monotonic() + WAIT
        while said not in caplog.text:
            assert time.monotonic() < deadline, "the slave did not say its key was refused"
            time.sleep(0.05)
    finally:
        slave.stop()
    assert runner.join() == 0


def test_sigterm(master, python311, tmp_path):
    command = [
        sys.executable,
        "-m",
        "piwheels.cli.slave",
        "--allow-root",  # harmless as another user; needed where the tests run as root
        "--slave-queue",
        master.slave_queue,
        "--file-queue",
        master.file_queue,
        "--python",
        str(python311),
        "--dir",
        str(tmp_path),
        # Long enough that the signal surely comes while it sleeps, not while it waits for us.
        "--sleep-interval",
        "30",
        "--label",
        "sigterm",
        "--insecure",  # this fake master has no keys
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert master.expect("HELLO", timeout=30).label == "sigterm"
            master.reply("ACK", (1, "http://127.0.0.1:9/simple/"))
            master.expect("IDLE")
            master.reply("SLEEP")
            proc.send_signal(signal.SIGTERM)
            master.expect("BYE")
            _, stderr = proc.communicate(timeout=WAIT)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "SIGTERM" in stderr
