"""A whole farm for tests: a master in a thread, real slave processes, and a scripted slave.

The master runs in-process so a test can read its log and stop or restart it; slaves run as real
``piw-slave`` processes (so a test can kill one) or as :class:`ScriptedSlave`, which speaks the
protocol message by message and can misbehave on purpose.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import zmq

from piwheels import protocols
from piwheels.abis import sorted_abis
from piwheels.builder_keys import (
    MASTER_KEY,
    SLAVE_KEY,
    TRUSTED,
    ClientKeys,
    TrustedKeys,
    key_pair,
)
from piwheels.db.database import Database
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig
from piwheels.protocols import NO_DATA
from piwheels.records.builds import BuildResult, FileState
from piwheels.records.slaves import SlaveHello, SlaveStats
from piwheels.transport import Socket
from pypi_index import LocalPyPI

T = TypeVar("T")


TEST_PROJECTS = [
    "piwtest-pure",
    "piwtest-cext",
    "piwtest-abi3",
    "piwtest-broken",
    "piwtest-py311",
    "piwtest-slow",
]


def configure(
    master_dsn: str, tmp_path: Path, index: LocalPyPI, abis: list[str], **kw: Any
) -> MasterConfig:
    db = Database(master_dsn)
    db.set_build_abis(sorted_abis(abis))
    db.close()
    (tmp_path / "www").mkdir(exist_ok=True)
    return make_config(
        master_dsn,
        tmp_path / "www",
        tmp_path,
        abis,
        pypi_simple=index.simple_url,
        pypi_json=index.json_url,
        packages=kw.pop("packages", TEST_PROJECTS),
        **kw,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "",
    context: Callable[[], str] | None = None,
) -> T:
    """Poll *check* until it returns something truthy; fail the test after *timeout* seconds,
    with what *context* says then (a peer's log, say)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            said = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}{said}")
        time.sleep(interval)


def make_config(
    dsn: str, output: Path, work: Path, abis: list[str], **overrides: Any
) -> MasterConfig:
    """A master configuration with every socket on loopback or in *work*."""
    config = MasterConfig(
        dsn=dsn,
        output_path=output,
        build_abis=abis,
        slave_queue=f"tcp://127.0.0.1:{free_port()}",
        file_queue=f"tcp://127.0.0.1:{free_port()}",
        control_queue=f"ipc://{work}/sockets/control",
        status_queue=f"ipc://{work}/sockets/status",
        import_queue=f"ipc://{work}/sockets/import",
        log_queue=f"ipc://{work}/sockets/log",
        pypi_interval=1.0,
        queue_interval=0.3,
        page_delay=0.3,
        stats_interval=1.0,
        search_interval=2.0,
        root_interval=1.0,
        slave_timeout=timedelta(seconds=30),
        min_free_space=1 << 20,
        # A master run in a thread shares its process, and so the memory QueueGuard reads,
        # with the test run: only the test of the guard itself gives it a bound.
        max_memory=1 << 40,
        key_dir=work / "keys",
    )
    config = replace(config, **overrides)
    if config.key_dir is not None:  # as piw-master makes it at its first start
        key_pair(config.key_dir, MASTER_KEY)
    return config


def builder_keys(
    config: MasterConfig,
    label: str = "builder",
    *,
    trusted: bool = True,
    directory: Path | None = None,
) -> ClientKeys | None:
    """A new builder key pair (in *directory*, by default a new one) for a slave of *config*'s
    master, trusted there unless not *trusted* (as ``piw-trust add`` would), with the master's
    public key; None for a master without keys."""
    if config.key_dir is None:
        return None
    master, _ = key_pair(config.key_dir, MASTER_KEY, make=False)
    directory = directory or config.key_dir.parent / f"builder-keys-{time.monotonic_ns()}"
    pair, _ = key_pair(directory, SLAVE_KEY)
    if trusted:
        TrustedKeys(config.key_dir / TRUSTED).add(pair.public, label)
    return ClientKeys(pair, master.public)


class MasterThread:
    """A :class:`PiwMaster` running in a background thread."""

    def __init__(self, config: MasterConfig, *, follow_pypi: bool = True) -> None:
        self.config = config
        self.master = PiwMaster(config, follow_pypi=follow_pypi)
        self.exit_status: int | None = None
        self.thread = threading.Thread(target=self._run, name="test-master", daemon=True)

    def _run(self) -> None:
        self.exit_status = self.master.run()

    def start(self) -> MasterThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.thread.is_alive():
            self.master.stop()
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "the master did not stop"
        return self.exit_status


class MasterProcess:
    """A real ``piw-master`` process with *config*'s queues and database, so a test can kill it
    with SIGKILL at the worst moment and start another on the same state. Without a DSN in
    *config*, it runs its own PostgreSQL (give it ``--data-dir`` in *extra*)."""

    def __init__(self, config: MasterConfig, work: Path, *extra: str) -> None:
        self.log_path = work / f"master-{time.monotonic_ns()}.log"
        command = [
            str(Path(sys.executable).with_name("piw-master")),
            "-v",
            *(["--dsn", config.dsn] if config.dsn else []),
            "--output-path",
            str(config.output_path),
            "--pypi-simple",
            config.pypi_simple,
            "--pypi-json",
            config.pypi_json,
            "--pypi-interval",
            str(config.pypi_interval),
            "--queue-interval",
            str(config.queue_interval),
            "--slave-timeout",
            str(config.slave_timeout.total_seconds()),
            "--busy-timeout",
            str(config.busy_timeout.total_seconds()),
            "--min-free-space",
            str(config.min_free_space),
            *(arg for abi in config.build_abis for arg in ("--build-abi", abi)),
            *(arg for package in config.packages for arg in ("--package", package)),
            *(
                arg
                for option in ("slave", "file", "control", "status", "import")
                for arg in (f"--{option}-queue", getattr(config, f"{option}_queue"))
            ),
            *(["--key-dir", str(config.key_dir)] if config.key_dir else []),
            *(
                arg
                for option in ("slave", "file")
                if (address := getattr(config, f"insecure_{option}_queue"))
                for arg in (f"--insecure-{option}-queue", address)
            ),
            *extra,
        ]
        self.log = self.log_path.open("w")
        # a session of its own, so a test can signal its whole process group as systemd would
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class SlaveProcess:
    """A real ``piw-slave`` process, for one interpreter, talking to the test's master."""

    def __init__(
        self,
        config: MasterConfig,
        python: Path,
        work: Path,
        *extra: str,
        work_root: Path | None = None,
        trusted: bool = True,
    ) -> None:
        name = f"slave-{python.parent.parent.name}-{time.monotonic_ns()}"
        # its key pair, trusted by the master (unless not *trusted*), as an operator would
        self.key_dir = work / f"{name}-keys"
        self.keys = builder_keys(config, name, trusted=trusted, directory=self.key_dir)
        self.log_path = work / f"{name}.log"
        # each slave holds its own directory (another slave's is refused)
        self.work_root = work_root or work / name
        command = [
            str(Path(sys.executable).with_name("piw-slave")),
            "--slave-queue",
            config.slave_queue,
            "--file-queue",
            config.file_queue,
            "--python",
            str(python),
            "--dir",
            str(self.work_root),
            "--busy-interval",
            "0.5",
            "--sleep-interval",
            "0.5",
            "--master-timeout",
            "5",
            "-v",
            # CI and these machines run tests as root; a real slave refuses root without this
            *(["--allow-root"] if os.geteuid() == 0 else []),
            *self.key_options(config),
            *extra,
        ]
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def key_options(self, config: MasterConfig) -> list[str]:
        if self.keys is None:
            return ["--insecure"]
        return ["--key-dir", str(self.key_dir), "--master-key", self.keys.master.decode()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def kill(self) -> None:
        """Kill the slave and its whole process group, as a crash or power cut would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def stats() -> SlaveStats:
    return SlaveStats(datetime.now(UTC), 10 << 30, 5 << 30, 1 << 30, 1 << 29, 0.5, 40.0)


class ScriptedSlave:
    """Plays a slave one message at a time (raw sockets, the real protocol)."""

    def __init__(
        self,
        config: MasterConfig,
        abi: str = "cp311",
        label: str = "scripted",
        *,
        kind: int = zmq.REQ,  # a DEALER may break the protocol as a REQ cannot
        routing_id: bytes | None = None,  # as our slaves give their request and file sockets
        trusted: bool = True,  # whether the master trusts its key (if the master has keys)
        keys: ClientKeys | None = None,  # other keys than a new builder's of its own
    ) -> None:
        self.config = config
        self.context: zmq.Context[Any] = zmq.Context()
        self.sock = Socket(kind, reversed(protocols.slave_driver), context=self.context)
        self.routing_id = routing_id
        if routing_id is not None:
            self.sock.zsock.setsockopt(zmq.ROUTING_ID, routing_id)
        self.keys = keys or builder_keys(config, label, trusted=trusted)
        if self.keys is not None:
            self.keys.secure(self.sock.zsock)
        self.sock.connect(config.slave_queue)
        self.abi = abi
        self.label = label
        self.slave_id: int | None = None

    def close(self) -> None:
        self.sock.close()
        self.context.term()

    def request(
        self, action: str, data: Any = NO_DATA, *, timeout: float = 10.0
    ) -> tuple[str, Any]:
        self.sock.send(action, data)
        if not self.sock.poll(timeout * 1000):
            return "TIMEOUT", None
        return self.sock.recv()

    def send_raw(self, payload: bytes) -> None:
        self.sock.zsock.send(payload)

    def hello(self) -> int:
        action, data = self.request("HELLO", self.hello_message())
        assert action == "ACK", action
        self.slave_id = data[0]
        return data[0]

    def hello_message(self) -> SlaveHello:
        return SlaveHello(
            timedelta(minutes=5),
            timedelta(seconds=5),
            self.abi.removeprefix("cp"),
            self.abi,
            "linux_x86_64",
            self.label,
            "Test",
            "1",
            "",
            "",
        )

    def idle(self) -> tuple[str, Any]:
        return self.request("IDLE", stats())

    def wait_for_build(self, timeout: float = 30.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            action, data = self.idle()
            if action == "BUILD":
                return data
            time.sleep(0.2)
        raise AssertionError("no BUILD within the time allowed")

    def publish(self, wheel: str, content: bytes) -> None:
        """Say HELLO, take the build of piwtest-pure 1.0 and publish *content* as *wheel*."""
        self.hello()
        assert self.wait_for_build() == ("piwtest-pure", "1.0")
        assert self.request("BUILT", build_result(file_state(wheel, content)))[0] == "SEND"
        assert self.send_file(content) == "DONE"
        assert self.request("SENT")[0] == "DONE"

    def file_socket(self) -> Socket:
        """A connection to the File Juggler, as this slave's own (its routing id and key)."""
        sock = Socket(zmq.DEALER, reversed(protocols.file_juggler), context=self.context)
        if self.routing_id is not None:
            sock.zsock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        if self.keys is not None:
            self.keys.secure(sock.zsock)
        return sock.connect(self.config.file_queue)

    def send_file(self, content: bytes, *, corrupt_first_chunk: bool = False) -> str:
        """Answer the File Juggler's FETCHes with *content*; return how the transfer ended."""
        sock = self.file_socket()
        try:
            sock.send("HELLO", self.slave_id)
            corrupt = corrupt_first_chunk
            while sock.poll(10_000):
                action, data = sock.recv()
                if action == "DONE":
                    return "DONE"
                offset, length = data
                chunk = content[offset : offset + length]
                if corrupt:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    corrupt = False
                sock.send("CHUNK", (offset, chunk))
            return "TIMEOUT"
        finally:
            sock.close()


def file_state(filename: str, content: bytes, **overrides: Any) -> FileState:
    name, version, py, abi, platform = filename.removesuffix(".whl").split("-")
    state = FileState(
        filename,
        len(content),
        hashlib.sha256(content).hexdigest(),
        name,
        version,
        py,
        abi,
        platform,
        frozenset(),
        None,
    )
    return state._replace(**overrides)


def build_result(*files: FileState, status: bool = True) -> BuildResult:
    return BuildResult(status, timedelta(seconds=2), "scripted build log", list(files))


def rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()
