"""The Slave Driver: hands out builds, receives results, and has the files fetched.

It speaks the spec's slave protocol on a ROUTER socket. Slaves are untrusted: every message is
checked against the protocol and against where that slave is in it; a bad one is logged and the
slave is forgotten (its build goes back to the queue, and the slave, getting no reply, starts
again from HELLO after its master timeout). A build is recorded only when every file it
produced has been fetched and verified by the File Juggler.

Nothing here waits: a step that needs the database or the File Juggler sends its request and
returns, and the slave's reply goes out when the answer comes back (see
:mod:`piwheels.master_support.request_pool`); meanwhile every other slave is answered at once.

This module holds the protocol and the pace at which builds are handed out; the rest of the
task is in :mod:`piwheels.master_support`: slave ids (slave_ids.py), the picture of the queue
(build_queue.py), what follows BUILT (build_collection.py), dropping slaves (lost_slaves.py).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master.seraph import urgent_routing_id
from piwheels.master_support.build_collection import BuildCollection, Reply, Step
from piwheels.master_support.build_queue import BuildQueue
from piwheels.master_support.builder_trust import describe_key, load_trust, open_builder_queues
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.cross_checks import CrossChecks
from piwheels.master_support.lost_slaves import LostSlaves
from piwheels.master_support.request_pool import Answer, RequestPool
from piwheels.master_support.slave_ids import SlaveIds
from piwheels.master_support.slaves import BuildKey, Connection, SlaveRecord, check_files
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.task import Task, describe_error
from piwheels.master_support.web_requests import PageRequests
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA, SLAVE_DIALECTS, Protocol
from piwheels.protocols.messages import QueueQuery
from piwheels.records.builds import BuildResult
from piwheels.records.slaves import SlaveHello, SlaveState, SlaveStats
from piwheels.transport import Socket, UntrustedPeer

# BUILT carries the whole build log; nothing a slave says is allowed to be bigger than this.
MAX_SLAVE_MESSAGE = 32 * 1024 * 1024
DB_TIMEOUT = 120.0  # as DbClient's
FS_TIMEOUT = 30.0
# Every slave reconnects at once when the master restarts. Beyond libzmq's default listen
# backlog (100) the rest wait for TCP to retry their SYNs (1 s, then 3 s) before their HELLO is
# even read; a longer one costs only the kernel's memory for connections not yet accepted (see
# BENCHMARKS.md, "slaves"). The kernel caps it at net.core.somaxconn.
SLAVE_BACKLOG = 1024
# How often the monitors are told of the slaves whose state changed: they hear of a change up
# to this late, and no reply waits meanwhile (told at each reply, the encoding of a status
# record was on the path of every reply, and a crowd's last HELLO waited for all the others).
STATUS_INTERVAL = 0.25
# At most this many at a time, the rest at the next interval: a crowd's states encoded in one go
# held every reply back; fewer makes the monitors hear of a crowd later.
STATUS_BATCH = 50
# After the master was behind, and after a slave joined, for CAUTIOUS seconds builds handed out
# within the last JUST_HANDED_OUT seconds count as answers owed (see SlaveDriver.behind). Longer
# than most slaves sleep after SLEEP (10-15 s), so that most of those put to sleep together find
# it on waking.
CAUTIOUS = 12.0
JUST_HANDED_OUT = 0.05
SLAVE_BURST = 32  # messages from slaves handled in one go, at most
SLAVE_RCVHWM = 4  # messages queued from one slave before libzmq stops reading its connection
FS_LANES = 4  # requests to the File Juggler in flight at once (one per slave)


# The ways a slave may speak, by the name of their protocol; tried in order on a first message.
DIALECTS = {dialect.protocol.name: dialect for dialect in SLAVE_DIALECTS}
DIALECT_PROTOCOLS = tuple(dialect.protocol for dialect in SLAVE_DIALECTS)


class SlaveDriver(SlaveIds, BuildQueue, BuildCollection, CrossChecks, LostSlaves, Task):
    name = "Slave Driver"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        # Two requests per Oracle, so an Oracle that finishes finds the next one waiting.
        self.db = RequestPool(
            self,
            config.oracle_queue,
            reversed(protocols.oracle),
            size=2 * config.oracles,
            timeout=DB_TIMEOUT,
            name="Oracles",
            routing_id=urgent_routing_id,  # slaves wait on these: Seraph serves them first
        )
        self.trust = load_trust(config.key_dir)
        # The secure queue, and the insecure one where it is opened: a slave's address is the
        # queue's number (one byte) and its routing id there (see handle_one_slave).
        self.slave_queues = open_builder_queues(
            self,
            protocols.slave_driver,
            config.slave_queue,
            config.insecure_slave_queue,
            self.trust,
            self.setup_slave_queue,
            max_memory=config.max_memory,
            max_message_size=MAX_SLAVE_MESSAGE,
            peer_addresses=True,
        )
        self.builds_queue = self.socket(zmq.PULL, reversed(protocols.architect))
        self.builds_queue.bind(config.builds_queue)
        # Each slave keeps to one lane (see fs()); with a single socket every EXPECT and VERIFY
        # queued behind every other slave's.
        self.fs_lanes = [
            RequestPool(
                self,
                config.fs_queue,
                reversed(protocols.file_juggler_control),
                size=1,
                timeout=FS_TIMEOUT,
                name="File Juggler",
            )
            for _ in range(FS_LANES)
        ]
        self.pages = PageRequests.connect(self, config.web_queue)
        self.status = StatusReporter.connect(self, config.status_internal_queue)
        self.commands = self.socket(zmq.PULL, protocols.slave_commands)
        self.commands.bind(config.slave_commands_queue)
        self.register(self.commands, self.handle_command)
        for number, queue in enumerate(self.slave_queues):
            self.register(queue, partial(self.handle_slave, number))
        self.register(self.builds_queue, self.handle_queue)
        self.every(1.0, self.expire_slaves)
        self.every(STATUS_INTERVAL, self.report_changes)
        self.every(60.0, self.report_held_back)
        self.every(config.queue_interval, self.refresh_checks)
        self.open_checks, self.checking = [], {}  # what CrossChecks keeps
        self.changes: dict[bytes, SlaveRecord] = {}  # slaves to tell the monitors about
        self.slaves: dict[bytes, SlaveRecord] = {}
        # what SlaveIds and BuildQueue keep (see them for what each holds)
        self.slave_ids, self.reserving, self.hellos_waiting = deque(), False, {}
        self.queue, self.queue_lengths, self.active, self.finished = {}, {}, {}, {}
        self.held_back = 0  # idle slaves told to sleep because the master was behind
        self.cautious_until = 0.0  # see behind()
        self.handed_out: deque[float] = deque()  # when builds were handed out, while cautious
        self.peak_backlog = 0
        self.handlers: dict[str, Callable[[SlaveRecord, Any], Reply | None]] = {
            "IDLE": self.do_idle,
            "BUSY": self.do_busy,
            "BUILT": self.do_built,
            "SENT": self.do_sent,
            "RESUME": self.do_resume,
        }

    # -- the monitor's commands, relayed by the master -----------------------------------------

    def handle_command(self) -> None:
        try:
            action, slave_id = self.commands.recv()
        except ProtocolError as exc:
            self.log.error("bad slave command: %s", exc)
            return
        targets = [s for s in self.slaves.values() if slave_id is None or s.slave_id == slave_id]
        if not targets:
            self.log.warning("%s: no slave %s", action, slave_id)
        for slave in targets:
            if action == "KILL":
                slave.kill_requested = True
            else:
                slave.sleep_requested = action == "SLEEP"
            self.log.info("slave %d: %s requested", slave.slave_id, action)
            self.status.send("SLAVE", slave.status())

    # -- messages from slaves ------------------------------------------------------------------

    def setup_slave_queue(self, zsock: zmq.Socket[Any]) -> None:
        zsock.setsockopt(zmq.BACKLOG, SLAVE_BACKLOG)
        # A slave has one message unanswered at a time: more queued from one peer is a flood,
        # held back in its own buffers rather than ours.
        zsock.setsockopt(zmq.RCVHWM, SLAVE_RCVHWM)

    def handle_slave(self, number: int) -> None:
        # A crowd (every slave connecting at once) is answered in bursts: not one poll of all
        # the task's sockets between two messages, yet never long enough to keep the
        # Oracles' answers waiting.
        queue = self.slave_queues[number]
        prefix = bytes([number])
        for _ in range(SLAVE_BURST):
            self.handle_one_slave(queue, prefix)
            events = queue.zsock.getsockopt(zmq.EVENTS)
            if not (isinstance(events, int) and events & zmq.POLLIN):
                return

    def handle_one_slave(self, queue: Socket, prefix: bytes) -> None:
        try:
            routing_id, action, data = queue.recv_from(
                dialects=DIALECT_PROTOCOLS,
                speaks=lambda routing_id: self.speaks(prefix + routing_id),
                admits=self.trust.admits if queue.peer_keys and self.trust else None,
            )
        except UntrustedPeer as exc:
            self.untrusted(prefix + (exc.address or b""), exc.key, queue)
            return
        except ProtocolError as exc:
            slave = self.slaves.get(prefix + exc.address) if exc.address else None
            self.log.error("refused a message from %s: %s", slave or self.stranger(queue), exc)
            if slave is not None:
                self.forget(slave, "it sent a malformed message")
            return
        address = prefix + routing_id
        try:
            dialect = DIALECTS[queue.spoken.name]
            connection = Connection(queue.peer, queue.peer_key, dialect)
            self.handle_message(address, action, dialect.received(action, data), connection)
        except Exception as exc:  # one slave's message must never end the task
            slave = self.slaves.get(address)
            self.log.error(
                "refused %s from %s: %s", action, slave or self.stranger(queue), describe_error(exc)
            )
            if slave is not None:
                self.forget(slave, "its message could not be handled")

    def untrusted(self, address: bytes, key: str, queue: Socket) -> None:
        """A message from a key not (or no longer) trusted: no reply; its slave, if it had
        one, is dropped and its build goes back to the queue at once (the build is not at
        fault)."""
        assert self.trust is not None
        slave = self.slaves.get(address)
        if slave is not None:
            self.trust.first_refusal(key)  # logged here, not again at its next message
            self.forget(slave, f"its key {describe_key(key)} is no longer trusted", lost=False)
        elif self.trust.first_refusal(key):
            self.log.warning(
                "ignored a message from %s: its key %s is not trusted",
                queue.peer or "a local address",
                describe_key(key) if key else "(none)",
            )

    def speaks(self, address: bytes) -> Protocol | None:
        """The protocol of the slave at *address*: its dialect, for the whole of its session."""
        slave = self.slaves.get(address)
        return None if slave is None else slave.dialect.protocol

    @staticmethod
    def stranger(queue: Socket) -> str:
        """The sender of the message just received, which is not a known slave, for the log."""
        return f"an unknown slave at {queue.peer or 'a local address'}"

    def handle_message(
        self, address: bytes, action: str, data: Any, connection: Connection
    ) -> None:
        if action == "HELLO":
            self.greet(address, data, connection)
            return
        slave = self.slaves.get(address)
        if slave is None:
            # Typically a slave still talking to the master we replaced; it gets no reply and
            # starts again from HELLO when its master timeout passes (the spec's behaviour).
            queue = self.slave_queues[address[0]]
            self.log.warning("ignored %s from %s", action, self.stranger(queue))
            return
        if connection.key != slave.key:  # its routing id, from another builder
            self.log.error("refused %s for %s from another builder's connection", action, slave)
            return
        slave.last_seen = time.monotonic()
        if action == "BYE":
            # its operator stopped it (a build that kills its slave leaves it silent): no try
            self.forget(slave, "it said BYE", lost=False)
            return
        if slave.waiting:
            # a slave on a REQ socket cannot speak again before it has its reply
            self.out_of_order(slave, action)
            return
        reply = self.handlers[action](slave, data)
        if reply is not None:
            self.reply(slave, reply)

    def reply(self, slave: SlaveRecord, reply: Reply) -> None:
        slave.waiting = False
        self.send(slave.address, *reply)
        self.changed(slave)

    def changed(self, slave: SlaveRecord) -> None:
        self.changes[slave.address] = slave

    def report_changes(self) -> None:
        for address in list(itertools.islice(self.changes, STATUS_BATCH)):
            slave = self.changes.pop(address)
            if self.slaves.get(address) is slave:  # one dropped meanwhile was reported GONE
                self.status.send("SLAVE", slave.status())

    def later(self, slave: SlaveRecord, step: Step) -> Answer:
        """The callback for a request made on *slave*'s behalf: *step* turns the answer into
        the slave's reply, unless the slave was dropped while the request was out."""
        slave.waiting = True

        def answered(status: str, result: Any) -> None:
            if self.slaves.get(slave.address) is not slave:
                return
            try:
                reply = step(status, result)
            except Exception as exc:  # what a slave reported must never end the task
                self.log.error("%s: its build cannot go on: %s", slave, describe_error(exc))
                self.forget(slave, "its build could not be handled")
                return
            if reply is not None:
                self.reply(slave, reply)

        return answered

    def send(self, address: bytes, action: str, data: Any = NO_DATA) -> None:
        queue, routing_id = self.slave_queues[address[0]], address[1:]
        slave = self.slaves.get(address)
        if slave is None:
            queue.send_to(routing_id, action, data)
            return
        slave.last_reply = action
        dialect = slave.dialect
        queue.send_to(routing_id, action, dialect.to_send(action, data), protocol=dialect.protocol)

    def greet(self, address: bytes, hello: SlaveHello, connection: Connection) -> None:
        reply = self.do_hello(address, hello, connection)
        if reply is not None:
            self.send(address, *reply)
            self.changed(self.slaves[address])

    def do_hello(self, address: bytes, hello: SlaveHello, connection: Connection) -> Reply | None:
        old = self.slaves.get(address)
        if old is not None:
            self.forget(old, "it said HELLO again")
        slave_id = self.take_slave_id()
        if slave_id is None:  # answered when the ids come (or, if too many wait, not at all)
            self.wait_for_slave_id(address, hello, connection)
            return None
        builder = self.trust.name(connection.key) if self.trust is not None else ""
        peer, dialect, key = connection.peer, connection.dialect, connection.key
        slave = SlaveRecord(slave_id, address, hello, peer, dialect, key, builder)
        self.slaves[address] = slave
        # A slave new to this master is load it has not measured, and they come in crowds (a
        # restart, a farm switched on): as cautious as after being behind (see behind()).
        self.cautious_until = time.monotonic() + CAUTIOUS
        self.log.info(
            "slave %d (%s, %s, %s%s) connected: %s %s, build timeout %s",
            slave.slave_id,
            hello.label,
            slave.peer or "local",
            f"key {describe_key(slave.key)}" if slave.key else "no key",
            ", the original piwheels slave" if dialect.name == "original" else "",
            hello.abi_tag,
            hello.platform_tag,
            hello.build_timeout,
        )
        if self.queue and hello.abi_tag not in self.queue:
            self.log.warning(
                "slave %d builds for %s, which is not one of this farm's ABIs (%s): it will sleep",
                slave.slave_id,
                hello.abi_tag,
                ", ".join(self.queue),
            )
        return "ACK", (slave.slave_id, self.config.index_for_slaves)

    def do_idle(self, slave: SlaveRecord, stats: SlaveStats) -> Reply | None:
        if slave.state not in (SlaveState.HELLO, SlaveState.IDLE, SlaveState.SLEEPING):
            self.out_of_order(slave, "IDLE")
            return None
        slave.stats = stats
        if slave.kill_requested:
            slave.state = SlaveState.DYING
            return "DIE", NO_DATA
        # SLEEP says whether the master is paused, for the original slaves' log
        if self.paused or slave.sleep_requested or self.behind() or not self.disk_has_room():
            slave.state = SlaveState.SLEEPING
            return "SLEEP", self.paused
        check = self.next_check(slave)
        if check is not None:  # first: the sooner a build is checked, the less harm if it fails
            return self.start_check(slave, check)
        build = self.next_build(slave.abi_tag)
        if build is None:
            slave.state = SlaveState.SLEEPING
            return "SLEEP", False
        slave.start_build(build)
        self.active[build] = slave.slave_id
        if self.cautious_until > time.monotonic():
            self.handed_out.append(time.monotonic())
        self.log.info("slave %d: build %s %s for %s", slave.slave_id, *build)
        return "BUILD", build[:2]

    def do_busy(self, slave: SlaveRecord, stats: SlaveStats) -> Reply | None:
        if slave.state != SlaveState.BUILDING or slave.build is None:
            self.out_of_order(slave, "BUSY")
            return None
        slave.stats = stats
        if slave.kill_requested:
            self.log.info("slave %d: stopping its build, it is to be killed", slave.slave_id)
            self.drop_build(slave)
            return "DONE", NO_DATA
        if slave.build not in self.active:
            # the build was taken away (e.g. the slave was thought lost); stop wasting time on it
            return "DONE", NO_DATA
        return "CONT", NO_DATA

    def do_built(self, slave: SlaveRecord, result: BuildResult) -> Reply | None:
        if slave.state != SlaveState.BUILDING or slave.build is None:
            self.out_of_order(slave, "BUILT")
            return None
        package, version, _abi = slave.build
        result, refusals = check_files(package, version, result)
        for refusal in refusals:
            self.log.error("slave %d: %s", slave.slave_id, refusal)
        if slave.check is not None:
            self.checked(slave, result)
            return None
        slave.result = result
        if result.status and result.files:
            filenames = [f.filename for f in result.files]
            self.db.ask("GETHASHES", filenames, self.later(slave, partial(self.plan, slave)))
            return None
        self.record(slave)
        return None

    def do_resume(self, slave: SlaveRecord, build: tuple[str, str]) -> Reply | None:
        """A slave back after losing its master mid-build: it keeps the build if the build
        still waits (a finished one is then taken, not redone), else drops it."""
        if slave.state != SlaveState.HELLO:
            self.out_of_order(slave, "RESUME")
            return None
        key = (*build, slave.abi_tag)
        holder = self.building(key)
        if holder is not None and not holder.same_machine(slave):
            return "DONE", NO_DATA
        query = QueueQuery(*key)
        self.db.ask("QUEUED", query, self.later(slave, partial(self.resumed, slave, key)))
        return None

    def building(self, key: BuildKey) -> SlaveRecord | None:
        """The slave that holds build *key*, if one does."""
        return next((s for s in self.slaves.values() if s.build == key), None)

    def resumed(self, slave: SlaveRecord, key: BuildKey, status: str, queued: Any) -> Reply:
        holder = self.building(key)
        if status != "OK" or queued is not True or key in self.finished:
            slave.state = SlaveState.IDLE
            return "DONE", NO_DATA
        if holder is not None:  # the same machine on its old connection
            self.forget(holder, "it came back on a new connection", lost=False)
        slave.start_build(key)
        self.active[key] = slave.slave_id
        self.log.info("slave %d: resumed %s %s for %s", slave.slave_id, *key)
        return "CONT", NO_DATA

    def do_sent(self, slave: SlaveRecord, _: object) -> Reply | None:
        if slave.state != SlaveState.SENDING or slave.sending is None:
            self.out_of_order(slave, "SENT")
            return None
        self.fs(slave).ask(
            "VERIFY", slave.slave_id, self.later(slave, partial(self.verified, slave))
        )
        return None

    # -- the pace at which builds are handed out ---------------------------------------------

    def behind(self) -> bool:
        """Whether the master owes so many answers that a new build would only add waiting.

        Builds finished at once by many slaves (a farm of fast builds, or every slave after a
        restart) come back faster than they can be recorded. Handing out more then lengthens
        every slave's wait without recording more (replies to BUILT and SENT wait behind the
        backlog; see BENCHMARKS.md, "slaves"). Idle slaves sleep instead until it clears.

        Slaves put to sleep together wake within a few seconds of each other (10-15 s later),
        their IDLEs coming faster than their results: the backlog alone let every one of them
        build, and replies waited after each such wake. So for a while after being behind, and
        after a slave joined (see do_hello), builds just handed out count as owed too.
        """
        now = time.monotonic()
        backlog = self.db.busy + sum(lane.busy for lane in self.fs_lanes)
        if now < self.cautious_until:
            while self.handed_out and self.handed_out[0] < now - JUST_HANDED_OUT:
                self.handed_out.popleft()
            backlog += len(self.handed_out)
        else:
            self.handed_out.clear()
        if backlog < self.config.max_backlog:
            return False
        self.cautious_until = now + CAUTIOUS
        self.held_back += 1
        self.peak_backlog = max(self.peak_backlog, backlog)
        return True

    def report_held_back(self) -> None:
        # once a minute: at saturation the backlog comes and goes hundreds of times a second
        if self.held_back:
            self.log.warning(
                "behind: %d idle slaves told to sleep in the last minute "
                "(up to %d requests to the database and File Juggler unanswered)",
                self.held_back,
                self.peak_backlog,
            )
        self.held_back = self.peak_backlog = 0
