"""Simulated build slaves for bench_slaves.py: many per process, each its own connection.

Each :class:`SimSlave` speaks the real slave protocol (:mod:`piwheels.protocols`, through
:mod:`piwheels.transport`) on a REQ socket of its own, and the File Juggler's on a DEALER of
its own for the wheels it sends, as ``piw-slave`` does, but builds instantly: its wheel is a tiny
real one made on the spot. A worker process drives its share of slaves from one event loop;
:func:`run_slaves` starts the workers together and gathers what their slaves saw (every reply's
latency by the message it answered, builds recorded, SLEEPs, timeouts).

With *keys* (a :class:`~piwheels.builder_keys.ClientKeys` per slave, or a few shared in turn),
both of a slave's connections are CurveZMQ ones, as ``piw-slave``'s are to a master with builder
keys (the production path); without, they are plain, as to the master's insecure queues.

With ``echo=True`` the slaves only repeat IDLE against a bare ROUTER (:func:`echo_main`): the
reference a benchmark compares the master's replies with.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import itertools
import random
import resource
import signal
import socket
import sys
import threading
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from piwheels import protocols
from piwheels.builder_keys import ClientKeys
from piwheels.master.slave_driver import SLAVE_BACKLOG
from piwheels.message_codec import ProtocolError, encode
from piwheels.protocols import NO_DATA
from piwheels.records.builds import BuildResult, FileState
from piwheels.records.slaves import SlaveHello, SlaveStats
from piwheels.slave.agent import SlaveConfig, spread
from piwheels.transport import Socket

MASTER_TIMEOUT = SlaveConfig.master_timeout.total_seconds()  # what a real slave waits
BUSY_INTERVAL = SlaveConfig.busy_interval.total_seconds()  # BUSY again while building
PLATFORM = "linux_x86_64"
WHEEL_TIME = (2026, 1, 1, 0, 0, 0)  # every member of every simulated wheel was made then
# Seconds between looks for masters gone silent: their timeout is minutes, and a look at every
# slave each few milliseconds (with the poll of all their sockets it forced) cost each worker
# a fifth of a core even with every slave asleep, on the cores the master shares.
TIMEOUT_CHECK_INTERVAL = 1.0
# Replies to requests sent in a run's first seconds are filed apart ("HELLO (start)"): the
# slaves joining (over a ramp, or all in the same instant) would otherwise hide the master's
# steady-state replies.
START = " (start)"
# What a connection's monitor tells of its handshake (CurveZMQ's, or plain ZMTP's greeting).
HANDSHAKE_DONE = zmq.EVENT_HANDSHAKE_SUCCEEDED
HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
# How long a worker waits for its slaves' handshakes, then for the other workers'.
HANDSHAKE_TIMEOUT = 120.0


def raise_fd_limit() -> None:
    # 500 slaves are 500 TCP connections, plus one per transfer, on each side.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def tiny_wheel(package: str, version: str, tags: tuple[str, str, str]) -> tuple[str, bytes]:
    """A real (if empty) wheel: the Scribe reads its METADATA for the PEP 658 file. The same
    bytes whoever makes it, whenever (its members' times are fixed), as a reproducible build's:
    a cross-check of it by another slave agrees."""
    dist = package.replace("-", "_")
    filename = f"{dist}-{version}-{'-'.join(tags)}.whl"
    info = f"{dist}-{version}.dist-info"
    members = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {'-'.join(tags)}\n",
        f"{info}/RECORD": "",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, text in members.items():
            wheel.writestr(zipfile.ZipInfo(name, date_time=WHEEL_TIME), text)
    return filename, buffer.getvalue()


def _stats() -> SlaveStats:
    return SlaveStats(datetime.now(UTC), 10 << 30, 5 << 30, 1 << 30, 1 << 29, 0.5, 40.0)


@dataclass
class Tally:
    """What one worker's slaves saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    steady_from: float = 0.0  # perf_counter() from which replies are no longer the start's
    first: list[float] = field(default_factory=list)  # each slave's first reply (to HELLO)
    recorded: int = 0
    sleeps: int = 0
    timeouts: int = 0
    errors: list[str] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds the worker process spent (its slaves' side of everything)
    # seconds from the moment every slave connected to its handshake's end, slave by slave
    handshakes: list[float] = field(default_factory=list)


class Watch:
    """The sockets a worker polls, kept as they open and close: rebuilding a poller of 125
    sockets at every turn of the loop cost the simulator more than the replies it read, on
    the cores the master shares. And the moments its slaves wake, soonest first, so the worker
    sleeps in its poll until the next one rather than looking at every slave again and again.
    """

    def __init__(self) -> None:
        self.poller = zmq.Poller()
        self.owners: dict[Any, tuple[SimSlave, bool]] = {}  # socket -> its slave, a transfer?
        self.alarms: list[tuple[float, int, SimSlave]] = []  # a heap: (when, tie-break, slave)
        self.order = itertools.count()  # slaves never compare: equal moments go in turn

    def alarm(self, slave: SimSlave, when: float) -> None:
        """Wake *slave* at *when* (unless it is woken otherwise first: see :meth:`due`)."""
        slave.wake_at = when
        heapq.heappush(self.alarms, (when, next(self.order), slave))

    def due(self, now: float) -> list[SimSlave]:
        """The slaves whose alarm has come, each still waiting for that alarm."""
        woken = []
        while self.alarms and self.alarms[0][0] <= now:
            when, _, slave = heapq.heappop(self.alarms)
            if slave.wake_at == when:
                woken.append(slave)
        return woken

    def next_alarm(self, default: float) -> float:
        return self.alarms[0][0] if self.alarms else default

    def add(self, sock: Socket, slave: SimSlave, *, transfer: bool = False) -> None:
        self.poller.register(sock.zsock, zmq.POLLIN)
        self.owners[sock.zsock] = (slave, transfer)

    def close(self, sock: Socket) -> None:
        if self.owners.pop(sock.zsock, None) is not None:
            self.poller.unregister(sock.zsock)
        sock.close()


class SimSlave:
    """One slave: a REQ socket to the Slave Driver, a DEALER to the File Juggler once it sends."""

    def __init__(
        self,
        number: int,
        abi: str,
        addresses: tuple[str, str],
        context: zmq.Context[Any],
        tally: Tally,
        watch: Watch,
        *,
        echo: bool,
        build_seconds: float = 0.0,
        keys: ClientKeys | None = None,
    ) -> None:
        self.number = number
        self.keys = keys  # None: plain connections
        self.watch = watch
        self.build_seconds = build_seconds
        # a build "runs" until this moment; waits end in IDLE (after SLEEP) or the build's BUSY
        self.build_done = 0.0
        self.waiting_for_build = False
        self.abi = abi
        self.slave_queue, self.file_queue = addresses
        self.context = context
        self.tally = tally
        self.echo = echo
        self.sock: Socket | None = None
        self.transfer: Socket | None = None
        self.transfer_action = ""  # the file queue message awaiting an answer, if any
        self.transfer_at = 0.0
        self.slave_id = 0
        self.sent_action = ""
        self.sent_at = 0.0
        self.wake_at: float | None = None
        self.said_hello = False  # a slave of a ramped start waits for its alarm to say HELLO
        self.answered = False  # whether the master has answered it at all yet
        self.wheel: tuple[str, bytes] | None = None
        self.result: BuildResult | None = None

    def connect(self, *, monitor: bool = False) -> zmq.Socket[Any] | None:
        """Open the connection to the Slave Driver; with *monitor*, return a socket that hears
        how its handshake ends."""
        self.close()
        self.sock = Socket(zmq.REQ, reversed(protocols.slave_driver), context=self.context)
        if self.keys is not None:
            self.keys.secure(self.sock.zsock)
        events = HANDSHAKE_DONE | HANDSHAKE_FAILED
        watcher = self.sock.zsock.get_monitor_socket(events) if monitor else None
        self.sock.connect(self.slave_queue)
        self.watch.add(self.sock, self)
        return watcher

    def hello(self, *, connected: bool = False) -> None:
        """Start (again) from HELLO: on a new connection, as a real slave, unless *connected*
        (made ahead: see _worker)."""
        if not connected:
            self.connect()
        self.said_hello = True
        if self.echo:
            self.request("IDLE", _stats())
            return
        hello = SlaveHello(
            timedelta(hours=3),
            timedelta(seconds=MASTER_TIMEOUT),
            self.abi.removeprefix("cp"),
            self.abi,
            PLATFORM,
            f"sim{self.number}",
            "Bench",
            "1",
            "",
            "",
        )
        self.request("HELLO", hello)

    def request(self, action: str, data: Any = NO_DATA) -> None:
        assert self.sock is not None
        self.sent_action, self.sent_at = action, time.perf_counter()
        self.sock.send(action, data)

    def waiting_since(self) -> float | None:
        return self.sent_at if self.sent_action else None

    def _count(self, sent: str, latency: float) -> None:
        starting = self.sent_at < self.tally.steady_from
        self.tally.latencies[sent + START if starting else sent].append(latency)
        if not self.answered:
            self.answered = True
            self.tally.first.append(latency)

    def on_reply(self) -> None:
        assert self.sock is not None
        now = time.perf_counter()
        action, data = self.sock.recv()
        sent, self.sent_action = self.sent_action, ""
        self._count(sent, now - self.sent_at)
        if self.echo:
            self.request("IDLE", _stats())
            return
        if action == "DIE":
            self.close()
        elif action == "ACK":
            self.slave_id = data[0]
            self.request("IDLE", _stats())
        elif action == "SLEEP":
            self.tally.sleeps += 1
            # as a real slave sleeps after SLEEP
            self.watch.alarm(self, now + spread(SlaveConfig.sleep_interval).total_seconds())
        elif action == "BUILD":
            self.start_build(*data)
            self.request("BUSY", _stats())
        elif action == "CONT":
            if now >= self.build_done:
                assert self.result is not None
                self.request("BUILT", self.result)
            else:
                # as a real slave: wait for the build, but say BUSY again every busy interval
                self.waiting_for_build = True
                self.watch.alarm(self, min(self.build_done, now + BUSY_INTERVAL))
        elif action == "SEND":
            self.start_transfer(data)
        elif action == "DONE":
            if sent in ("BUILT", "SENT"):
                self.tally.recorded += 1
            self.wheel = self.result = None
            self.request("IDLE", _stats())
        else:
            self.tally.errors.append(f"slave {self.number}: {action} in reply to {sent}")
            self.hello()

    def wake(self) -> None:
        self.wake_at = None
        if not self.said_hello:
            self.hello(connected=True)
            return
        if not self.waiting_for_build:
            self.request("IDLE", _stats())
            return
        self.waiting_for_build = False
        if time.perf_counter() >= self.build_done:
            assert self.result is not None
            self.request("BUILT", self.result)
        else:
            self.request("BUSY", _stats())

    def start_build(self, package: str, version: str) -> None:
        # a paced run's builds take between half and one and a half times the mean
        spread = random.uniform(0.5, 1.5) if self.build_seconds else 0.0
        self.build_done = time.perf_counter() + self.build_seconds * spread
        none = int(hashlib.sha256(f"{package} {version}".encode()).hexdigest(), 16) % 5 < 2
        tags = ("py3", "none", "any") if none else (self.abi, self.abi, PLATFORM)
        filename, content = self.wheel = tiny_wheel(package, version, tags)
        file = FileState(
            filename,
            len(content),
            hashlib.sha256(content).hexdigest(),
            package.replace("-", "_"),
            version,
            *tags,
            frozenset(),
            None,
        )
        self.result = BuildResult(True, timedelta(seconds=1), "built in no time\n", [file])

    def start_transfer(self, filename: str) -> None:
        assert self.wheel is not None
        assert self.wheel[0] == filename, filename
        if self.transfer is None:  # one for all its files, as piw-slave's (see FileConnection)
            self.transfer = Socket(
                zmq.DEALER, reversed(protocols.file_juggler), context=self.context
            )
            if self.keys is not None:  # the same key as its requests, as piw-slave's
                self.keys.secure(self.transfer.zsock)
            self.transfer.connect(self.file_queue)
            self.watch.add(self.transfer, self, transfer=True)
        self.transfer_action, self.transfer_at = "file HELLO", time.perf_counter()
        self.transfer.send("HELLO", self.slave_id)

    def on_transfer(self) -> None:
        assert self.transfer is not None
        assert self.wheel is not None
        now = time.perf_counter()
        try:
            action, data = self.transfer.recv()
        except ProtocolError as exc:
            self.tally.errors.append(f"slave {self.number}: {exc}")
            return
        if self.transfer_action:
            starting = self.transfer_at < self.tally.steady_from
            answered = self.transfer_action + (START if starting else "")
            self.tally.latencies[answered].append(now - self.transfer_at)
            self.transfer_action = ""
        if action == "DONE":
            self.request("SENT")
            return
        offset, length = data
        self.transfer_action, self.transfer_at = "CHUNK", time.perf_counter()
        self.transfer.send("CHUNK", (offset, self.wheel[1][offset : offset + length]))

    def close(self) -> None:
        for sock in (self.sock, self.transfer):
            if sock is not None:
                self.watch.close(sock)
        self.sock = self.transfer = None
        self.sent_action = ""


def _handshakes(slaves: list[SimSlave], tally: Tally, index: int) -> None:
    """Connect every slave at once and wait until each handshake has ended; note how long
    each took (and any that failed) in *tally*."""
    connected = time.perf_counter()
    watchers = {}
    for slave in slaves:
        watcher = slave.connect(monitor=True)
        assert watcher is not None
        watchers[watcher] = slave
    poller = zmq.Poller()
    for watcher in watchers:
        poller.register(watcher, zmq.POLLIN)
    failed = 0
    deadline = connected + HANDSHAKE_TIMEOUT
    while watchers and (left := deadline - time.perf_counter()) > 0:
        for watcher, _ in poller.poll(left * 1000):
            event = recv_monitor_message(watcher)["event"]
            if event == HANDSHAKE_DONE:
                tally.handshakes.append(time.perf_counter() - connected)
            else:
                failed += 1  # refused: libzmq tries again, but the run will not wait for it
            poller.unregister(watcher)
            slave = watchers.pop(watcher)
            assert slave.sock is not None
            slave.sock.zsock.disable_monitor()
            watcher.close(linger=0)
    for watcher, slave in watchers.items():
        assert slave.sock is not None
        slave.sock.zsock.disable_monitor()
        watcher.close(linger=0)
    if failed or watchers:
        tally.errors.append(
            f"worker {index}: {failed} handshakes failed, {len(watchers)} never ended"
        )


def _worker(
    index: int,
    abis: list[str],
    numbers: list[int],
    addresses: tuple[str, str],
    seconds: float,
    echo: bool,
    build_seconds: float,
    start_seconds: float,
    connect_at: float,
    together: Any,
    ramp_seconds: float,
    keys: list[ClientKeys] | None,
    out: Connection,
) -> None:
    """One process's slaves, from HELLO until *seconds* have passed. Slave *n* connects with
    ``keys[n % len(keys)]``, or plainly without *keys*, at *connect_at*; every worker
    (*together*, a barrier) starts once all the handshakes are over."""
    raise_fd_limit()
    cpu = time.process_time()
    context: zmq.Context[Any] = zmq.Context()
    tally = Tally()
    watch = Watch()
    slaves = [
        SimSlave(
            n,
            abis[n % len(abis)],
            addresses,
            context,
            tally,
            watch,
            echo=echo,
            build_seconds=build_seconds,
            keys=keys[n % len(keys)] if keys else None,
        )
        for n in numbers
    ]
    # Connected ahead: the first send on a new connection waited for it (~3 ms here), so
    # connecting in the storm held each process's last HELLO back 0.4 s behind its other
    # 124, and the first replies unread as long, whatever the master did. A real slave's
    # side of the handshake is its own machine's work. The master takes all 500 at once, in
    # the same instant, and the run starts only when every handshake is over: a CurveZMQ one
    # is the master's work too (its crypto, its ZAP handler's check of the key), and 500 of
    # them took up to 2 s here, so a run started at a set moment had them spill into its
    # first seconds whenever the machine was busy. How long they took is measured apart.
    time.sleep(max(0.0, connect_at - time.time()))
    _handshakes(slaves, tally, index)
    try:
        together.wait(HANDSHAKE_TIMEOUT)
    except threading.BrokenBarrierError:
        tally.errors.append(f"worker {index}: the other workers' handshakes did not end")
    # every worker starts at the same moment: its slaves say HELLO at once, or over the ramp
    start = time.perf_counter()
    deadline = start + seconds
    tally.steady_from = start + start_seconds
    for slave in slaves:
        if ramp_seconds > 0:
            watch.alarm(slave, start + random.uniform(0.0, ramp_seconds))
        else:
            slave.hello(connected=True)
    try:
        _drive(slaves, deadline, tally, watch)
    except Exception as exc:  # the parent must hear of it, not wait for a report forever
        tally.errors.append(f"worker {index} crashed: {exc!r}")
    if silent := sum(not slave.answered for slave in slaves):
        # a refused key (or a master on the other side of security) is never answered at all
        how = "with CurveZMQ keys" if keys else "plainly"
        tally.errors.append(f"worker {index}: {silent} slaves (connected {how}) never answered")
    for slave in slaves:
        slave.close()
    context.term()
    tally.cpu = time.process_time() - cpu
    out.send(
        (
            dict(tally.latencies),
            tally.first,
            tally.recorded,
            tally.sleeps,
            tally.timeouts,
            tally.errors,
            tally.cpu,
            tally.handshakes,
        )
    )
    out.close()


def _drive(slaves: list[SimSlave], deadline: float, tally: Tally, watch: Watch) -> None:
    next_check = time.perf_counter() + TIMEOUT_CHECK_INTERVAL
    while (now := time.perf_counter()) < deadline:
        for slave in watch.due(now):
            slave.wake()
        if now >= next_check:
            next_check = now + TIMEOUT_CHECK_INTERVAL
            for slave in slaves:
                since = slave.waiting_since()
                if since is not None and now - since > MASTER_TIMEOUT:
                    # what a real slave does: give up on the master and start again from HELLO
                    tally.timeouts += 1
                    slave.hello()
        wait = max(0.0, min(watch.next_alarm(deadline), next_check, deadline) - time.perf_counter())
        for sock, _ in watch.poller.poll(wait * 1000):
            owner = watch.owners.get(sock)
            if owner is None:
                continue  # closed by a handler before it in this round
            slave, transfer = owner
            if transfer:
                slave.on_transfer()
            else:
                slave.on_reply()


def echo_main(address: str) -> None:
    """The reference: a ROUTER answering every request at once with a canned SLEEP."""
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    # the master's own listen backlog, so that connecting costs both the same
    sock.setsockopt(zmq.BACKLOG, SLAVE_BACKLOG)
    sock.bind(address)
    reply = encode(protocols.slave_driver, "SLEEP")
    while True:
        frames = sock.recv_multipart()
        sock.send_multipart([frames[0], b"", reply])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Outcome:
    """What every slave of a run saw, put together."""

    latencies: list[float]
    by_action: dict[str, list[float]]  # by the request answered; START marks the first seconds
    recorded: int
    sleeps: int
    timeouts: int
    errors: list[str]
    seconds: float
    first: list[float]  # each slave's first reply
    slaves_cpu: float = 0.0  # CPU seconds of every worker process, from start to report
    # seconds from the moment all the slaves connected at once to each one's handshake's end
    handshakes: list[float] = field(default_factory=list)

    def steady(self) -> list[float]:
        """The latencies of replies to requests sent after the start's storm."""
        return [v for key, values in self.by_action.items() if START not in key for v in values]


def run_slaves(
    ctx: Any,
    count: int,
    workers: int,
    abis: list[str],
    addresses: tuple[str, str],
    seconds: float,
    *,
    echo: bool,
    build_seconds: float = 0.0,
    start_seconds: float = 0.0,
    ramp_seconds: float = 0.0,
    keys: list[ClientKeys] | None = None,
) -> Outcome:
    """*count* slaves (ABIs in turn) in *workers* processes of *ctx*, for *seconds*; each
    build takes *build_seconds* on average (0: none at all). Each slave says its first HELLO
    at a random moment of the run's first *ramp_seconds*; with 0, all in the same instant.
    With *keys*, slave *n* connects to both queues with ``keys[n % len(keys)]`` (CurveZMQ);
    without, plainly. Every slave connects in the same instant, and the run begins once every
    handshake is over (how long each took is in the outcome's ``handshakes``)."""
    workers = max(1, min(workers, count))
    connect_at = time.time() + 2.0  # time for every worker to start up
    together = ctx.Barrier(workers)
    pipes, processes = [], []
    for index in range(workers):
        numbers = list(range(index, count, workers))
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_worker,
            args=(
                index,
                abis,
                numbers,
                addresses,
                seconds,
                echo,
                build_seconds,
                start_seconds,
                connect_at,
                together,
                ramp_seconds,
                keys,
                sender,
            ),
            name=f"bench-slaves-{index}",
        )
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    by_action: dict[str, list[float]] = defaultdict(list)
    recorded = sleeps = timeouts = 0
    errors: list[str] = []
    first: list[float] = []
    slaves_cpu = 0.0
    handshakes: list[float] = []
    for receiver, process in zip(pipes, processes, strict=True):
        if receiver.poll(seconds + 2 * HANDSHAKE_TIMEOUT + 120):
            latencies, firsts, done, slept, lost, errs, cpu, shakes = receiver.recv()
            slaves_cpu += cpu
            handshakes += shakes
            for action, values in latencies.items():
                by_action[action].extend(values)
            first += firsts
            recorded, sleeps, timeouts = recorded + done, sleeps + slept, timeouts + lost
            errors += errs
        else:
            errors.append(f"{process.name} sent no report")
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    latencies = [value for values in by_action.values() for value in values]
    return Outcome(
        latencies,
        by_action,
        recorded,
        sleeps,
        timeouts,
        errors,
        seconds,
        first,
        slaves_cpu,
        sorted(handshakes),
    )
