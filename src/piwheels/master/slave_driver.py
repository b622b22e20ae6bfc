"""The Slave Driver: hands out builds, receives results, and has the files fetched.

It speaks the spec's slave protocol on a ROUTER socket. Slaves are untrusted: every message is
checked against the protocol and against where that slave is in it; a bad one is logged and the
slave is forgotten (its build goes back to the queue, and the slave, getting no reply, starts
again from HELLO after its master timeout). A build is recorded only when every file it
produced has been fetched and verified by the File Juggler.

Nothing here waits: a step that needs the database or the File Juggler sends its request and
returns, and the slave's reply goes out when the answer comes back (see
:mod:`piwheels.master_support.request_pool`); meanwhile every other slave is answered at once.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master.seraph import urgent_routing_id
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.request_pool import Answer, RequestPool
from piwheels.master_support.slaves import BuildKey, SlaveRecord, check_files
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.task import Task, describe_error
from piwheels.master_support.web_requests import PageRequests
from piwheels.protocols import NO_DATA
from piwheels.protocols.messages import BuildReport, Discard, Expect, LostBuild, QueueQuery
from piwheels.records.builds import BuildResult
from piwheels.records.slaves import SlaveHello, SlaveState, SlaveStats
from piwheels.records.status import BuildEvent
from piwheels.transport import ProtocolError

# BUILT carries the whole build log; nothing a slave says is allowed to be bigger than this.
MAX_SLAVE_MESSAGE = 32 * 1024 * 1024
# A finished build may linger in a queue picture read just before it was recorded: it is not
# handed out again until a picture read after it comes (or, should none, for this long).
RECENTLY_FINISHED = 120.0
MAX_SEND_ATTEMPTS = 3
DB_TIMEOUT = 120.0  # as DbClient's
FS_TIMEOUT = 30.0
# Every slave reconnects at once when the master restarts. With libzmq's default listen backlog
# (100) the rest of 500 wait for TCP to retry their SYNs (1 s, then 3 s): the longest HELLO
# round trip in bench/bench_slaves.py went from 1.35 s to 0.27 s with this. The kernel caps it
# at net.core.somaxconn.
SLAVE_BACKLOG = 1024
# How often the monitors are told of the slaves whose state changed. Telling them at each
# reply put the encoding of a status record on the path of every reply: when 500 slaves
# connect at once, the last HELLO waited for the status of all the others.
STATUS_INTERVAL = 0.25
# At most this many at a time, the rest at the next interval: when 500 slaves connect at once,
# encoding all their states in one go held every reply back ~15 ms, four times a second.
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
SLAVE_ID_BLOCK = 1000  # as reserve_slave_ids() reserves them (migration 0008)
HELLOS_WAITING = 10_000  # HELLOs held while the next block of ids is being reserved

Reply = tuple[str, Any]


def building_yet_silent(slave: SlaveRecord, deadline: float) -> bool:
    """Whether *slave* should have said BUSY since *deadline*: it is building, and owed
    nothing (while the master works on its last message, the slave waits in silence)."""
    return slave.state == SlaveState.BUILDING and not slave.waiting and slave.last_seen < deadline


def sending_yet_silent(slave: SlaveRecord, deadline: float) -> bool:
    """Whether *slave*, sending a file, has been silent here since *deadline* (and its
    transfer not yet looked at)."""
    return (
        slave.state == SlaveState.SENDING
        and not slave.waiting
        and not slave.checking
        and slave.last_seen < deadline
    )


class SlaveDriver(Task):
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
        self.slave_queue = self.socket(
            zmq.ROUTER,
            protocols.slave_driver,
            max_message_size=MAX_SLAVE_MESSAGE,
            peer_addresses=True,
        )
        self.slave_queue.zsock.setsockopt(zmq.BACKLOG, SLAVE_BACKLOG)
        # A slave has one message unanswered at a time: more queued from one peer is a flood,
        # held back in its own buffers rather than ours.
        self.slave_queue.zsock.setsockopt(zmq.RCVHWM, SLAVE_RCVHWM)
        self.slave_queue.bind(config.slave_queue)
        self.builds_queue = self.socket(zmq.PULL, reversed(protocols.architect))
        self.builds_queue.bind(config.builds_queue)
        # Each slave keeps to one lane, so the File Juggler sees a slave's FORGET before its next
        # EXPECT; with a single socket every EXPECT and VERIFY queued behind every other
        # slave's (p99 ~250 ms of waiting for the socket with 500 slaves on instant builds).
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
        self.register(self.slave_queue, self.handle_slave)
        self.register(self.builds_queue, self.handle_queue)
        self.every(1.0, self.expire_slaves)
        self.every(STATUS_INTERVAL, self.report_changes)
        self.every(60.0, self.report_held_back)
        self.changes: dict[bytes, SlaveRecord] = {}  # slaves to tell the monitors about
        self.slaves: dict[bytes, SlaveRecord] = {}
        self.slave_ids: deque[int] = deque()  # reserved in the database, not yet given
        self.reserving = False
        self.hellos_waiting: dict[bytes, tuple[SlaveHello, str]] = {}  # address -> HELLO, IP
        self.queue: dict[str, list[tuple[str, str]]] = {}
        self.queue_lengths: dict[str, int] = {}
        self.active: dict[BuildKey, int] = {}  # build -> slave_id building it
        # build -> its record's id and when it was recorded
        self.finished: dict[BuildKey, tuple[int, float]] = {}
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

    def once(self) -> None:
        # Ids are the database's, never given twice, so a build's built_by names one slave.
        db = DbClient(self.config.oracle_queue, self.context)
        try:
            self.add_slave_ids("OK", db.reserve_slave_ids())
        except DatabaseError as exc:
            self.log.error("cannot reserve slave ids (asking again at the next HELLO): %s", exc)
        finally:
            db.close()

    def add_slave_ids(self, status: str, first: Any) -> None:
        self.reserving = False
        if status != "OK":
            self.log.error("cannot reserve slave ids: %s", first)
            return
        self.slave_ids.extend(range(first, first + SLAVE_ID_BLOCK))
        waiting, self.hellos_waiting = self.hellos_waiting, {}
        for address, (hello, peer) in waiting.items():
            self.greet(address, hello, peer)

    def take_slave_id(self) -> int | None:
        """The next slave id, reserving more before they run out; None if there are none."""
        if len(self.slave_ids) < SLAVE_ID_BLOCK // 2 and not self.reserving:
            self.reserving = True
            self.db.ask("SLAVEIDS", then=self.add_slave_ids)
        return self.slave_ids.popleft() if self.slave_ids else None

    # -- messages from the Architect -----------------------------------------------------------

    def handle_queue(self) -> None:
        try:
            _, (heads, lengths, last_build) = self.builds_queue.recv()
        except ProtocolError as exc:
            self.log.error("bad queue message: %s", exc)
            return
        # A picture read after a build was recorded knows of it: if it lists the build, the
        # build was queued again since (a give-back due, a dep-wait met, an operator's retry).
        cutoff = time.monotonic() - RECENTLY_FINISHED
        self.finished = {
            key: (build_id, at)
            for key, (build_id, at) in self.finished.items()
            if at > cutoff and build_id > last_build
        }
        self.queue = {
            abi: [
                (pkg, ver)
                for pkg, ver in entries
                if (pkg, ver, abi) not in self.active and (pkg, ver, abi) not in self.finished
            ]
            for abi, entries in heads.items()
        }
        self.queue_lengths = lengths
        self.status.send("QUEUE", lengths)

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

    def handle_slave(self) -> None:
        # A crowd (every slave connecting at once) is answered in bursts: not one poll of all
        # the task's sockets between two messages, yet never long enough to keep the
        # Oracles' answers waiting.
        for _ in range(SLAVE_BURST):
            self.handle_one_slave()
            events = self.slave_queue.zsock.getsockopt(zmq.EVENTS)
            if not (isinstance(events, int) and events & zmq.POLLIN):
                return

    def handle_one_slave(self) -> None:
        try:
            address, action, data = self.slave_queue.recv_from()
        except ProtocolError as exc:
            slave = self.slaves.get(exc.address) if exc.address else None
            self.log.error("refused a message from %s: %s", slave or self.stranger(), exc)
            if slave is not None:
                self.forget(slave, "it sent a malformed message")
            return
        try:
            self.handle_message(address, action, data)
        except Exception as exc:  # one slave's message must never end the task
            slave = self.slaves.get(address)
            self.log.error(
                "refused %s from %s: %s", action, slave or self.stranger(), describe_error(exc)
            )
            if slave is not None:
                self.forget(slave, "its message could not be handled")

    def stranger(self) -> str:
        """The sender of the message just received, which is not a known slave, for the log."""
        return f"an unknown slave at {self.slave_queue.peer or 'a local address'}"

    def handle_message(self, address: bytes, action: str, data: Any) -> None:
        if action == "HELLO":
            self.greet(address, data, self.slave_queue.peer)
            return
        slave = self.slaves.get(address)
        if slave is None:
            # Typically a slave still talking to the master we replaced; it gets no reply and
            # starts again from HELLO when its master timeout passes (the spec's behaviour).
            self.log.warning("ignored %s from %s", action, self.stranger())
            return
        slave.last_seen = time.monotonic()
        if action == "BYE":
            self.forget(slave, "it said BYE")
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

    def later(self, slave: SlaveRecord, step: Callable[[str, Any], Reply | None]) -> Answer:
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
        slave = self.slaves.get(address)
        if slave is not None:
            slave.last_reply = action
        self.slave_queue.send_to(address, action, data)

    def greet(self, address: bytes, hello: SlaveHello, peer: str) -> None:
        reply = self.do_hello(address, hello, peer)
        if reply is not None:
            self.send(address, *reply)
            self.changed(self.slaves[address])

    def do_hello(self, address: bytes, hello: SlaveHello, peer: str) -> Reply | None:
        old = self.slaves.get(address)
        if old is not None:
            self.forget(old, "it said HELLO again")
        slave_id = self.take_slave_id()
        if slave_id is None:  # answered when the ids come (or, if too many wait, not at all)
            if len(self.hellos_waiting) < HELLOS_WAITING:
                self.hellos_waiting[address] = (hello, peer)
            return None
        slave = SlaveRecord(slave_id, address, hello, peer=peer)
        self.slaves[address] = slave
        # A slave new to this master is load it has not measured, and they come in crowds (a
        # restart, a farm switched on): as cautious as after being behind (see behind()).
        self.cautious_until = time.monotonic() + CAUTIOUS
        self.log.info(
            "slave %d (%s, %s) connected: %s %s, build timeout %s",
            slave.slave_id,
            hello.label,
            slave.peer or "local",
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
        if self.paused or slave.sleep_requested or self.behind() or not self.disk_has_room():
            slave.state = SlaveState.SLEEPING
            return "SLEEP", NO_DATA
        build = self.next_build(slave.abi_tag)
        if build is None:
            slave.state = SlaveState.SLEEPING
            return "SLEEP", NO_DATA
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

    # -- steps taken when an answer comes back -------------------------------------------------

    def plan(self, slave: SlaveRecord, status: str, published: Any) -> Reply | None:
        """Given the hashes of those of its files already published, fetch the rest."""
        if status != "OK":
            self.log.error("cannot check published files: %s", published)
            return self.abandon(slave, "the database is unavailable")
        slave.result, to_send = slave.plan_transfers(dict(published))
        for filename in published:
            self.log.warning("slave %d: %s is already published", slave.slave_id, filename)
        if to_send and not self.disk_has_room(sum(f.filesize for f in to_send)):
            return self.abandon(slave, "the output disk is nearly full")
        if to_send:
            self.next_transfer(slave)
            return None
        self.record(slave)
        return None

    def expected(self, slave: SlaveRecord, status: str, detail: Any) -> Reply:
        assert slave.sending is not None
        if status != "OK":
            return self.abandon(slave, f"cannot receive {slave.sending.filename}: {detail}")
        return "SEND", slave.sending.filename

    def verified(self, slave: SlaveRecord, status: str, detail: Any) -> Reply | None:
        assert slave.sending is not None
        if status == "OK":
            self.log.info("slave %d: %s verified", slave.slave_id, slave.sending.filename)
            slave.fetched.append(slave.sending.filename)
            slave.to_send.pop(0)
            slave.attempts = 0
            if slave.to_send:
                self.next_transfer(slave)
            else:
                self.record(slave)
            return None
        self.log.warning("slave %d: %s failed: %s", slave.slave_id, slave.sending.filename, detail)
        if slave.attempts >= MAX_SEND_ATTEMPTS or detail.kind == "no-room":
            return self.abandon(slave, f"transfer of {slave.sending.filename} failed: {detail}")
        self.next_transfer(slave)
        return None

    # -- steps that ask, the slave's reply coming with the answer --------------------------------

    def next_transfer(self, slave: SlaveRecord) -> None:
        file = slave.to_send[0]
        slave.state, slave.sending = SlaveState.SENDING, file
        slave.attempts += 1
        assert slave.build is not None
        expect = Expect(slave.slave_id, slave.build[0], file, slave.address, slave.peer)
        self.fs(slave).ask("EXPECT", expect, self.later(slave, partial(self.expected, slave)))

    def record(self, slave: SlaveRecord) -> None:
        assert slave.build is not None and slave.result is not None
        build, result = slave.build, slave.result
        slave.waiting = slave.recording = True
        # From here the request decides the fate of the fetched files, not the slave.
        fetched, slave.fetched = slave.fetched, []
        self.db.ask(
            "LOGBUILD",
            BuildReport(slave.slave_id, *build, result),
            partial(self.recorded, slave, build, result, fetched),
        )

    def recorded(
        self,
        slave: SlaveRecord,
        build: BuildKey,
        result: BuildResult,
        fetched: list[str],
        status: str,
        detail: Any,
    ) -> None:
        # The build is recorded (or not) whatever became of the slave while the Oracle worked.
        current = self.slaves.get(slave.address) is slave and slave.build == build
        if status != "OK":
            self.discard(build[0], fetched)
            if current:
                self.reply(slave, self.abandon(slave, f"cannot record the build: {detail}"))
            else:
                self.log.error("cannot record %s (its slave is gone): %s", build, detail)
            return
        package, version, abi = build
        build_id = int(detail)
        # A build the database refused as it was is recorded failed, without its files (see
        # Database.log_build): those fetched and not listed must not stay in the index.
        self.discard(package, fetched)
        self.log.info(
            "slave %d: recorded build %d of %s %s for %s (%s)",
            slave.slave_id,
            build_id,
            package,
            version,
            abi,
            "success" if result.status else "failure",
        )
        self.active.pop(build, None)
        self.finished[build] = (build_id, time.monotonic())
        self.pages.project(package)
        event = BuildEvent(
            datetime.now(UTC), slave.slave_id, package, version, abi, result.status, result.duration
        )
        self.status.send("BUILD", event)
        if current:
            slave.end_build()
            self.reply(slave, ("DONE", NO_DATA))

    def abandon(self, slave: SlaveRecord, reason: str) -> Reply:
        """End the build without recording it: it goes back to the queue."""
        self.log.error("slave %d: abandoned %s: %s", slave.slave_id, slave.build, reason)
        if slave.sending is not None:
            self.fs(slave).ask("FORGET", slave.slave_id)
        self.drop_build(slave)
        return "DONE", NO_DATA

    def drop_build(self, slave: SlaveRecord) -> None:
        """End *slave*'s build unrecorded: the next queue refresh brings it back."""
        if slave.build is not None:
            self.active.pop(slave.build, None)
            self.discard(slave.build[0], slave.fetched)
        slave.end_build()

    def discard(self, package: str, filenames: list[str]) -> None:
        """Have the File Juggler delete files fetched for a build that was not recorded,
        unless the database lists them (another build of the same wheel may have been)."""
        if not filenames:
            return

        def unlisted(status: str, published: Any) -> None:
            if status != "OK":
                self.log.error("%s left on disk: cannot tell if published", ", ".join(filenames))
                return
            gone = [name for name in filenames if name not in published]
            if gone:
                self.fs_lanes[0].ask("DISCARD", Discard(package, gone))

        self.db.ask("GETHASHES", filenames, unlisted)

    def forget(self, slave: SlaveRecord, reason: str, *, lost: bool = True) -> None:
        """Drop *slave*; a build it held is *lost* with it (or, not, carried on elsewhere)."""
        self.log.warning("slave %d (%s) dropped: %s", slave.slave_id, slave.label, reason)
        if slave.build is not None:
            if slave.sending is not None:
                self.fs(slave).ask("FORGET", slave.slave_id)
            if lost and not slave.recording:
                self.log.info("build %s %s for %s is given back (slave lost)", *slave.build)
                self.record_lost(slave, reason)
        self.drop_build(slave)
        self.slaves.pop(slave.address, None)
        self.status.send("GONE", slave.slave_id)

    def record_lost(self, slave: SlaveRecord, reason: str) -> None:
        """Record *slave*'s build as lost with it: a give-back, retried after a delay and
        failed after a few tries, so a build that kills its slave does not kill them all."""
        assert slave.build is not None
        started = slave.build_started if slave.build_started is not None else time.monotonic()
        took = timedelta(seconds=max(time.monotonic() - started, 0.0))
        build = slave.build

        def recorded(status: str, detail: Any) -> None:
            if status != "OK":  # it goes back to the queue at once instead
                self.log.error("cannot record the lost build %s: %s", build, detail)
            else:
                self.pages.project(build[0])

        self.db.ask("LOSTBUILD", LostBuild(slave.slave_id, *build, took, reason), recorded)

    def out_of_order(self, slave: SlaveRecord, action: str) -> None:
        self.log.error(
            "slave %d sent %s while %s (after %s): refused",
            slave.slave_id,
            action,
            slave.state,
            slave.last_reply,
        )
        self.forget(slave, "it broke the protocol")

    def expire_slaves(self) -> None:
        now = time.monotonic()
        deadline = now - self.config.slave_timeout.total_seconds()
        # A building slave reports BUSY every few seconds: its silence says it is gone (killed,
        # or its machine lost), long before the general timeout would.
        busy_deadline = now - self.config.busy_timeout.total_seconds()
        for slave in list(self.slaves.values()):
            if slave.last_seen < deadline:
                self.forget(slave, f"silent for more than {self.config.slave_timeout}")
            elif building_yet_silent(slave, busy_deadline):
                self.forget(slave, f"building, yet silent for {self.config.busy_timeout}")
            elif sending_yet_silent(slave, busy_deadline):
                # silent here while its file comes on the file queue: ask how that goes
                slave.checking = True
                self.fs(slave).ask("STALLED", slave.slave_id, partial(self.stalled, slave))

    def stalled(self, slave: SlaveRecord, status: str, idle: Any) -> None:
        """Drop a sending slave whose transfer has not moved for --busy-timeout (killed
        mid-transfer, it would hold its build until --slave-timeout)."""
        slave.checking = False
        if self.slaves.get(slave.address) is not slave or slave.state != SlaveState.SENDING:
            return
        limit = self.config.busy_timeout
        if status == "OK" and (idle is None or idle > limit.total_seconds()):
            self.forget(slave, f"sending, yet no chunk for {limit}")

    def next_build(self, abi: str) -> BuildKey | None:
        entries = self.queue.get(abi, [])
        while entries:
            package, version = entries.pop(0)
            key = (package, version, abi)
            if key not in self.active and key not in self.finished:
                return key
        return None

    def fs(self, slave: SlaveRecord) -> RequestPool:
        return self.fs_lanes[slave.slave_id % len(self.fs_lanes)]

    def behind(self) -> bool:
        """Whether the master owes so many answers that a new build would only add waiting.

        Builds finished at once by many slaves (a farm of fast builds, or every slave after a
        restart) come back faster than they can be recorded. Handing out more then lengthens
        every slave's wait without recording more: with 500 slaves on instant builds, replies
        to BUILT and SENT waited seconds. Idle slaves sleep instead until the backlog clears.

        Slaves put to sleep together wake within a few seconds of each other (10-15 s later),
        their IDLEs coming faster than their results: the backlog alone let every one of them
        build, and replies waited ~0.6 s after each such wake. So for a while after being behind,
        and after a slave joined (see do_hello), builds just handed out count as owed too.
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

    def disk_has_room(self, needed: int = 0) -> bool:
        try:
            stat = os.statvfs(self.config.output_path)
        except OSError as exc:
            self.log.error("cannot check the output disk: %s", exc)
            return False
        return stat.f_bavail * stat.f_frsize - needed >= self.config.min_free_space
