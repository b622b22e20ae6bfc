"""Nothing a peer sends may stop, stall or bloat the master (issue #13): its handlers.

Generated hostile messages (see fuzz_messages.py); test_fuzz_decoders.py tries the decoders
alone.

A real master (ZeroMQ, PostgreSQL) is sent hostile frames on every queue a peer reaches. After
each example a well-behaved peer checks that the master still answers; after the lot, a fresh
slave still gets its build and nothing is published that the database does not list.

Generation is derandomized and keeps no example database, so every run sends the same messages.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq
from fuzz_messages import (
    HUGE_INTS,
    LONGS,
    NOW,
    Long,
    Raw,
    decodes_as,
    describe,
    dumps,
    frames,
    hostile_values,
    payloads,
    wire,
)
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from farm import (
    MasterThread,
    ScriptedSlave,
    build_result,
    configure,
    file_state,
    rows,
)
from piwheels import protocols
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig
from piwheels.message_codec import decode
from piwheels.records.slaves import SlaveHello
from pypi_index import LocalPyPI

MAX_ERROR_TEXT = 2000  # a refusal is logged: it must not carry the peer's megabytes with it
# The hand-made costly messages must be refused well within this (pytest-timeout, not a
# benchmark: a decoder that refuses them up front takes milliseconds).
HOSTILE_TIMEOUT = 10

# -- the handler layer ------------------------------------------------------------------------

# Each barrage starts with the messages the decoder layer found to crash a task, so that
# a regression is caught whatever the generated examples happen to be.
HUGE = HUGE_INTS[0]  # 10**5000
OVERFLOW = HUGE_INTS[3]  # 2**1100: no float() for it
SYNC_TIMEOUT = 10.0  # seconds a well-behaved peer waits for the master's answer
WHEEL = "piwtest_pure-1.0-cp39-cp39-linux_x86_64.whl"
PAGES = {"index.html", "index.json"}


def barrage(examples: int) -> settings:
    """Settings for sending *examples* hostile examples to a running master: no shrinking
    (it would replay against a master the failure may have stopped), no deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    # plain builder queues, as an insecure queue is: anyone reaches the decoders there
    return configure(
        master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"], key_dir=None
    )


class FuzzedThread(MasterThread):
    """A MasterThread that keeps what ended it, for the failure to show."""

    died: BaseException | None = None

    def _run(self) -> None:
        try:
            super()._run()
        except Exception as exc:  # the master's main loop itself let a peer's message through
            self.died = exc


class Running:
    """A master under attack, in a thread of this process or in a process of its own."""

    def __init__(self, config: MasterConfig, *, process: bool = False) -> None:
        self.thread = None if process else FuzzedThread(config)
        # not a daemon: the master's own fetch processes are its children
        self.process = (
            multiprocessing.get_context("spawn").Process(
                target=run_master, args=(config, os.getpid()), name="fuzzed master"
            )
            if process
            else None
        )

    def start(self) -> Running:
        if self.thread is not None:
            self.thread.start()
        else:
            assert self.process is not None
            self.process.start()
        return self

    def alive(self) -> bool:
        if self.thread is not None:
            return self.thread.thread.is_alive() and self.thread.exit_status is None
        assert self.process is not None
        return self.process.is_alive()

    def why(self, caplog: pytest.LogCaptureFixture) -> str:
        """What stopped it: the tracebacks logged, or how the process ended."""
        if self.process is not None and not self.process.is_alive():
            code = self.process.exitcode
            signame = signal.Signals(-code).name if code is not None and code < 0 else None
            return f"the master's process ended with {signame or f'exit status {code}'}"
        if self.thread is not None and self.thread.died is not None:
            trace = "".join(traceback.format_exception(self.thread.died))
            return f"the master's main loop raised:\n{trace[-3000:]}"
        return crash_report(caplog)

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        elif self.process is not None and self.process.is_alive():
            self.process.terminate()  # SIGTERM: the master stops its tasks and exits
            self.process.join(30)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(10)


def run_master(config: MasterConfig, parent: int) -> None:
    """A child process's whole life: one master until SIGTERM, or until the test run that
    started it is gone (see Running)."""
    logging.basicConfig(level=logging.WARNING)
    master = PiwMaster(config)

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        master.stopping.set()

    threading.Thread(target=orphaned, daemon=True).start()
    sys.exit(master.run())


@pytest.fixture
def master(config: MasterConfig) -> Iterator[Running]:
    running = Running(config).start()
    yield running
    running.stop()


class Barrage:
    """Hostile examples one after another, each followed by proof that the master answers.

    Once it stops answering the remaining examples are skipped (they would only wait), and the
    last two examples sent are kept to say what stopped it.
    """

    def __init__(
        self, master: Running, context: zmq.Context[Any], sync: Callable[[], bool]
    ) -> None:
        self.master = master
        self.context = context
        self.sync = sync
        self.sent = 0
        self.recent: deque[str] = deque(maxlen=2)
        self.failure: str | None = None
        self._open: list[zmq.Socket[Any] | RawPeer] = []

    def socket(self, kind: int, address: str) -> zmq.Socket[Any]:
        """A hostile peer's socket, connected (so that what it sends goes ahead of the sync,
        not after it), and closed once the master has answered the sync."""
        sock = self.context.socket(kind)
        # what it sent still goes out after it is closed (a peer that sends and hangs up)
        sock.setsockopt(zmq.LINGER, 5000)
        if kind == zmq.REQ:
            sock.setsockopt(zmq.REQ_RELAXED, 1)  # send again without waiting for a reply
        events = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            sock.connect(address)
            if events.poll(SYNC_TIMEOUT * 1000):  # else the sync fails too, and says so
                recv_monitor_message(events)
        finally:
            sock.disable_monitor()
            events.close(linger=0)
        self._open.append(sock)
        return sock

    def raw(self, address: str, kind: str) -> RawPeer:
        """A hostile peer speaking ZMTP by hand, closed as :meth:`socket`'s are."""
        peer = RawPeer(address, kind)
        self._open.append(peer)
        return peer

    def __call__(self, example: Any, send: Callable[[], bool]) -> None:
        if self.failure is not None:
            return
        self.recent.append(describe(example, limit=2000))
        try:
            answered = send() and self.master.alive() and self.sync()
        finally:
            for sock in self._open:
                sock.close()
            self._open.clear()
        self.sent += 1
        if not answered:
            self.failure = (
                f"the master stopped answering after {self.sent} examples; the last:\n"
                + "\n".join(self.recent)
            )

    def check(self, caplog: pytest.LogCaptureFixture) -> None:
        if self.failure is not None:
            pytest.fail(f"{self.failure}\n{self.master.why(caplog)}", pytrace=False)


def crash_report(caplog: pytest.LogCaptureFixture) -> str:
    """The tracebacks the master's tasks logged (a task that crashed stops the master)."""
    reports = []
    for record in caplog.records:
        if record.exc_info and record.exc_info[1] is not None:
            trace = "".join(traceback.format_exception(record.exc_info[1]))
            reports.append(f"{record.name}: {record.getMessage()}\n{trace[-3000:]}")
        elif record.levelno >= logging.CRITICAL:
            reports.append(f"{record.name}: {record.getMessage()[-3000:]}")
    return "\n".join(reports[:3]) or "(no traceback logged)"


def unlisted_files(config: MasterConfig) -> list[str]:
    """Files under simple/ that are neither pages nor (the metadata of) a file the database
    lists: a hostile peer must never get anything published, not even half a file."""
    listed = {name for (name,) in rows(config.dsn, "SELECT filename FROM files")}
    simple = config.output_path / "simple"
    stray = []
    for path in simple.rglob("*"):
        name = path.name
        if not path.is_file() or name in PAGES:
            continue
        if name.startswith(".index.") and name.endswith(".tmp"):
            continue  # a page being written this moment
        if name.removesuffix(".metadata") not in listed:
            stray.append(str(path.relative_to(simple)))
    return stray


def assert_master_unharmed(
    master: Running, config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The master runs, a fresh slave gets the build, and nothing unlisted is published."""
    assert master.alive(), "the master stopped\n" + master.why(caplog)
    slave = ScriptedSlave(config, abi="cp39", label="well-behaved")
    try:
        slave.hello()
        # long enough for the master to forget a hostile slave that took the build and fell
        # silent (a generated HELLO could name cp39): its build then goes back to the queue
        timeout = config.slave_timeout.total_seconds() + 30
        assert slave.wait_for_build(timeout) == ("piwtest-pure", "1.0")
    finally:
        slave.close()
    deadline = time.monotonic() + 10  # a transfer given up is cleaned up in the background
    while (stray := unlisted_files(config)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stray, f"files the database does not list: {stray}"


def envelopes(payload: st.SearchStrategy[Any], *, dealer: bool) -> st.SearchStrategy[list[Any]]:
    """Multipart messages around *payload*: mostly well-formed, some not at all.

    A DEALER must send the empty delimiter itself; a REQ adds it, so its message is the rest.
    """
    extra = st.lists(payload, min_size=1, max_size=2)
    if not dealer:
        return st.one_of(payload.map(lambda p: [p]), st.tuples(payload, extra).map(_join))
    delimiter = Raw(b"")
    return st.one_of(
        payload.map(lambda p: [delimiter, p]),
        payload.map(lambda p: [p]),  # no delimiter
        st.tuples(payload, extra).map(lambda pair: [delimiter, *_join(pair)]),
        st.lists(st.binary(max_size=16).map(Raw), min_size=1, max_size=4),
    )


def _join(pair: tuple[Any, list[Any]]) -> list[Any]:
    return [pair[0], *pair[1]]


def hostile_hello() -> bytes:
    """A valid HELLO from a slave of an ABI no farm builds for (so it is never given a build)."""
    hello = SlaveHello(
        timedelta(minutes=5),
        timedelta(seconds=5),
        "0",
        "cp0",
        "linux_x86_64",
        "hostile",
        "Test",
        "1",
        "",
        "",
    )
    return dumps(wire(protocols.slave_driver.recv["HELLO"], "HELLO", hello))


def answered(sock: zmq.Socket[Any]) -> bool:
    if not sock.poll(SYNC_TIMEOUT * 1000):
        return False
    sock.recv_multipart()
    return True


@pytest.mark.parametrize("kind", [zmq.REQ, zmq.DEALER], ids=["REQ", "DEALER"])
def test_hostile_slaves_cannot_stop_the_master(
    config: MasterConfig,
    master: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
    kind: int,
) -> None:
    """The slave queue, from peers that said a valid HELLO first and peers that did not."""
    dealer = kind == zmq.DEALER
    hello = [b"", hostile_hello()] if dealer else [hostile_hello()]
    probe = ScriptedSlave(config, abi="cp0", label="probe")
    try:

        def sync() -> bool:
            reply = probe.request("HELLO", probe.hello_message(), timeout=SYNC_TIMEOUT)
            return reply[0] == "ACK"

        hits = Barrage(master, context, sync)
        messages = envelopes(payloads(protocols.slave_driver), dealer=dealer)

        head = [Raw(b"")] if dealer else []

        @barrage(60)
        @example(after_hello=False, sent=[[*head, HUGE]])
        @example(after_hello=True, sent=[[*head, ["IDLE", NOW, 1, 1, 1, 1, OVERFLOW, 40.0]]])
        @given(after_hello=st.booleans(), sent=st.lists(messages, min_size=1, max_size=3))
        def attack(after_hello: bool, sent: list[list[Any]]) -> None:
            def send() -> bool:
                sock = hits.socket(kind, config.slave_queue)
                if after_hello:
                    sock.send_multipart(hello)
                    if not answered(sock):
                        return False
                for parts in sent:
                    sock.send_multipart(frames(parts))
                return True

            hits((after_hello, sent), send)

        attack()
    finally:
        probe.close()
    hits.check(caplog)
    assert_master_unharmed(master, config, caplog)


FILE_INTS = st.integers() | st.sampled_from(HUGE_INTS)


def test_hostile_file_senders_cannot_stop_the_master(
    config: MasterConfig,
    master: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The file queue: HELLOs of any integer, CHUNKs of any offset, anything else."""
    probe = context.socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    probe.connect(config.file_queue)

    def sync() -> bool:
        # no transfer is expected from slave 999,999: the File Juggler says DONE at once
        probe.send_multipart([b"", dumps(["HELLO", 999_999])])
        return answered(probe)

    hits = Barrage(master, context, sync)
    payload = st.one_of(
        payloads(protocols.file_juggler),
        st.builds(lambda n: ["HELLO", n], FILE_INTS | hostile_values),
        st.builds(
            lambda offset, chunk: ["CHUNK", offset, chunk],
            FILE_INTS | hostile_values,
            st.binary(max_size=64) | st.sampled_from(LONGS) | hostile_values,
        ),
    )

    @barrage(40)
    @example(sent=[[Raw(b""), ["HELLO", HUGE]]])
    @example(sent=[[Raw(b""), ["CHUNK", HUGE, b"x"]]])
    @given(sent=st.lists(envelopes(payload, dealer=True), min_size=1, max_size=4))
    def attack(sent: list[list[Any]]) -> None:
        def send() -> bool:
            sock = hits.socket(zmq.DEALER, config.file_queue)
            for parts in sent:
                sock.send_multipart(frames(parts))
            return True

        hits(sent, send)

    attack()
    hits.check(caplog)
    assert_master_unharmed(master, config, caplog)


CONTENT = bytes(range(256)) * (8 * 1024 + 4)  # three chunks of the File Juggler's 1 MiB
NOT_ITS_HASH = "0" * 64  # so no transfer ever verifies, and the build stays in the queue
CHUNK_REPLIES = st.one_of(
    st.sampled_from(["right", "short", "long", "corrupt", "twice", "silent"]),
    st.tuples(st.just("offset"), FILE_INTS),
    st.tuples(
        st.just("frames"), envelopes(payloads(protocols.file_juggler), dealer=True).map(tuple)
    ),
)


def answer_fetches(sock: zmq.Socket[Any], plan: list[Any]) -> None:
    """Answer the File Juggler's FETCHes as *plan* says, the right chunk once it runs out,
    until it says DONE or falls silent (a FETCH left unanswered)."""
    peer = reversed(protocols.file_juggler)
    while sock.poll(1500):
        parts = sock.recv_multipart()
        action, data = decode(peer, parts[-1])
        if action == "DONE":
            return
        offset, length = data
        chunk = CONTENT[offset : offset + length]
        reply = plan.pop(0) if plan else "right"
        messages: list[list[Any]] = []
        if reply in ("right", "twice"):
            messages = [[Raw(b""), ["CHUNK", offset, chunk]]] * (2 if reply == "twice" else 1)
        elif reply == "short":
            messages = [[Raw(b""), ["CHUNK", offset, chunk[:-1]]]]
        elif reply == "long":
            messages = [[Raw(b""), ["CHUNK", offset, chunk + b"!"]]]
        elif reply == "corrupt":
            messages = [[Raw(b""), ["CHUNK", offset, bytes([chunk[0] ^ 0xFF]) + chunk[1:]]]]
        elif isinstance(reply, tuple) and reply[0] == "offset":
            messages = [[Raw(b""), ["CHUNK", reply[1], chunk]]]
        elif isinstance(reply, tuple):
            messages = [list(reply[1])]
        for parts in messages:
            sock.send_multipart(frames(parts))


def test_hostile_chunks_in_a_transfer_cannot_stop_the_master(
    config: MasterConfig,
    master: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slave that reports a wheel, then answers the FETCHes for it with chunks of the wrong
    size, at the wrong offset, twice, not at all, or with anything else."""
    hits = Barrage(master, context, lambda: True)  # each transfer is its own proof

    @barrage(6)
    @given(plan=st.lists(CHUNK_REPLIES, min_size=1, max_size=6))
    def attack(plan: list[Any]) -> None:
        def send() -> bool:
            slave = ScriptedSlave(config, abi="cp39", label="hostile sender")
            try:
                slave.hello()
                if slave.wait_for_build() != ("piwtest-pure", "1.0"):
                    return False
                result = build_result(file_state(WHEEL, CONTENT, filehash=NOT_ITS_HASH))
                reply = slave.request("BUILT", result)
                while reply[0] == "SEND":
                    sock = hits.socket(zmq.DEALER, config.file_queue)
                    sock.send_multipart([b"", dumps(["HELLO", slave.slave_id])])
                    answer_fetches(sock, plan)
                    reply = slave.request("SENT")
                return reply[0] == "DONE"
            except AssertionError:  # no ACK, or no BUILD: the master is not answering
                return False
            finally:
                slave.close()

        hits(plan, send)

    attack()
    hits.check(caplog)
    assert rows(config.dsn, "SELECT count(*) FROM files") == [(0,)]
    assert_master_unharmed(master, config, caplog)


def test_hostile_imports_cannot_stop_the_master(
    config: MasterConfig,
    master: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The import queue (Mr. Chase), from a REQ peer as the operators' tools use."""
    probe = context.socket(zmq.REQ)
    probe.setsockopt(zmq.LINGER, 0)
    probe.connect(config.import_queue)

    def sync() -> bool:
        probe.send(dumps(["REBUILD", "SEARCH", None]))
        return answered(probe)

    hits = Barrage(master, context, sync)
    # a well-formed ADD would do its job: queue a build the fresh slave would be given first
    payload = payloads(protocols.mr_chase).filter(
        lambda p: not decodes_as(protocols.mr_chase, p, frozenset({"ADD"}))
    )

    @barrage(30)
    @example(sent=[[HUGE]])
    @example(sent=[[["REMOVE", "piwtest-nothing", HUGE, ""]]])
    @given(sent=st.lists(envelopes(payload, dealer=False), min_size=1, max_size=3))
    def attack(sent: list[list[Any]]) -> None:
        def send() -> bool:
            sock = hits.socket(zmq.REQ, config.import_queue)
            for parts in sent:
                sock.send_multipart(frames(parts))
            return True

        hits(sent, send)

    attack()
    hits.check(caplog)
    assert_master_unharmed(master, config, caplog)


class Monitor:
    """A monitor on the status queue: proof that the master's main thread answers a HELLO."""

    def __init__(self, config: MasterConfig, context: zmq.Context[Any]) -> None:
        self.sub = context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(config.status_queue)
        self.peer = reversed(protocols.status)
        # the subscription takes a moment to reach the master (and a master in a process of
        # its own a moment to start); its queue reports show it has
        assert self.sub.poll(3 * SYNC_TIMEOUT * 1000), "no status from the master"

    def replayed(self, control: zmq.Socket[Any], attempts: int = 1) -> bool:
        """Send HELLO on *control*; True once the master's state (MASTER) is published.

        With *attempts*, HELLO is sent again when no answer comes within SYNC_TIMEOUT /
        attempts: a peer whose frame was too big is disconnected, losing what it sent after
        (it reconnects at once).
        """
        for _ in range(attempts):
            while self.sub.poll(0):
                self.sub.recv()
            control.send(dumps("HELLO"))
            deadline = time.monotonic() + SYNC_TIMEOUT / attempts
            while self.sub.poll(max(0.0, deadline - time.monotonic()) * 1000):
                if decode(self.peer, self.sub.recv())[0] == "MASTER":
                    return True
        return False


def test_hostile_commands_cannot_stop_the_master(
    config: MasterConfig,
    master: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The control queue, from one PUSH peer (whose HELLO, sent after each example, comes
    after everything it sent before, unless it was disconnected for a frame too big)."""
    monitor = Monitor(config, context)
    control = context.socket(zmq.PUSH)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(config.control_queue)
    hits = Barrage(master, context, lambda: monitor.replayed(control, attempts=3))
    # QUIT and PAUSE do their job; the master reads each frame as a message of its own
    doing_its_job = frozenset({"QUIT", "PAUSE"})
    payload = payloads(protocols.master_commands).filter(
        lambda p: not decodes_as(protocols.master_commands, p, doing_its_job)
    )

    @barrage(30)
    @example(sent=[[HUGE]])
    @example(sent=[[["KILL", OVERFLOW]]])
    @given(sent=st.lists(envelopes(payload, dealer=False), min_size=1, max_size=3))
    def attack(sent: list[list[Any]]) -> None:
        def send() -> bool:
            for parts in sent:
                control.send_multipart(frames(parts))
            return True

        hits(sent, send)

    attack()
    hits.check(caplog)
    assert_master_unharmed(master, config, caplog)


# A subscription costs the master's PUB socket ~100 bytes per byte of its prefix: these are
# small, bar the one explicit example of 8 MB whose cost the test measures.
PREFIXES = st.binary(max_size=32) | st.sampled_from([Long(b"\xff", 65536), Long(b"x", 10_000)])
ZMTP_GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)


def zmtp_frame(body: bytes, *, more: bool = False, command: bool = False) -> bytes:
    """One ZMTP 3.0 frame (RFC 23): flags, a one- or eight-byte size, the body."""
    flags = (0x01 if more else 0) | (0x04 if command else 0)
    if len(body) > 255:
        return bytes([flags | 0x02]) + len(body).to_bytes(8, "big") + body
    return bytes([flags, len(body)]) + body


class RawPeer:
    """A ZeroMQ peer without libzmq: ZMTP 3.0 by hand, free to send what it likes.

    For subscribers: libzmq's own SUB and XSUB keep a trie of what they subscribed to, and
    overflow their stack destroying one for a prefix of a few hundred KB (libzmq 4.3.5), which
    would take this test run down with them.
    """

    def __init__(self, address: str, kind: str) -> None:
        if address.startswith("ipc://"):
            self.sock = socket.socket(socket.AF_UNIX)
            target: Any = address.removeprefix("ipc://")
        else:
            host, port = address.removeprefix("tcp://").rsplit(":", 1)
            self.sock = socket.socket()
            target = (host, int(port))
        self.sock.settimeout(SYNC_TIMEOUT)
        self.sock.connect(target)
        ready = b"\x05READY\x0bSocket-Type" + len(kind).to_bytes(4, "big") + kind.encode()
        self.sock.sendall(ZMTP_GREETING + zmtp_frame(ready, command=True))

    def send(self, parts: list[bytes]) -> None:
        """Send one message (of several frames); the master may have hung up already, which
        is its right with a peer that breaks the protocol."""
        last = len(parts) - 1
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(b"".join(zmtp_frame(p, more=i < last) for i, p in enumerate(parts)))

    def close(self) -> None:
        self.sock.close()


def peak_memory(pid: int) -> int:
    """The most memory process *pid* has held resident so far, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.fixture
def master_process(config: MasterConfig) -> Iterator[Running]:
    running = Running(config, process=True).start()
    yield running
    running.stop()


def test_hostile_subscribers_cannot_stop_or_bloat_the_master(
    config: MasterConfig,
    master_process: Running,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The status queue: subscribers with large prefixes, sending what they like.

    Its master runs in a process of its own, so that its memory can be measured: a peer's
    8 MB subscription must not cost it ~900 MB (libzmq's PUB without a MAXMSGSIZE).
    """
    master = master_process
    assert master.process is not None and master.process.pid is not None
    monitor = Monitor(config, context)
    start = peak_memory(master.process.pid)
    control = context.socket(zmq.PUSH)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(config.control_queue)
    hits = Barrage(master, context, lambda: monitor.replayed(control))
    # (first byte, the rest): 1 subscribes, 0 unsubscribes (from what it never subscribed to)
    messages = st.tuples(st.sampled_from([b"\x01", b"\x00"]), PREFIXES) | st.tuples(
        st.just(b""), st.binary(max_size=64)
    )

    @barrage(30)
    @example(kind="SUB", sent=[[(b"\x01", Long(b"\0", 8 << 20))]])  # one subscription of 8 MB
    @given(
        kind=st.sampled_from(["SUB", "XSUB"]),
        sent=st.lists(st.lists(messages, min_size=1, max_size=3), min_size=1, max_size=4),
    )
    def attack(kind: str, sent: list[list[tuple[bytes, bytes | Long]]]) -> None:
        def send() -> bool:
            try:
                peer = hits.raw(config.status_queue, kind)
            except OSError:  # nothing listens on the status queue any more
                return False
            for parts in sent:
                peer.send([head + (p.value() if isinstance(p, Long) else p) for head, p in parts])
            return True

        hits((kind, sent), send)

    attack()
    hits.check(caplog)
    grown = peak_memory(master.process.pid) - start
    assert_master_unharmed(master, config, caplog)
    assert grown < 256 << 20, f"the master's memory peaked {grown >> 20} MB above its start"
