"""The piwheels master: its tasks, wired together and run until told to stop.

The tasks are this package's other modules, one each, named as the spec names them; what they
are built on is :mod:`piwheels.master_support`. Each task is a thread with its own sockets.
This module binds the control queues, starts the tasks in an order where every queue has a
reader, and stops them all on SIGTERM / SIGINT, on QUIT, or as soon as one task crashes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zmq

from piwheels import __version__, protocols, provenance
from piwheels.builder_keys import KeyFileError
from piwheels.db.embedded import EmbeddedPostgresError
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.heap import release_free_memory
from piwheels.master.big_brother import BigBrother
from piwheels.master.cloud_gazer import CloudGazer
from piwheels.master.file_juggler import FileJuggler
from piwheels.master.hit_counter import HitCounter
from piwheels.master.mr_chase import MrChase
from piwheels.master.seraph import Seraph
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master.the_architect import TheArchitect
from piwheels.master.the_oracle import TheOracle
from piwheels.master.the_scribe import TheScribe
from piwheels.master.the_secretary import TheSecretary
from piwheels.master_support.builder_trust import BuilderAuthenticator, BuilderTrust
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.local_queues import local_addresses, local_queue_problem
from piwheels.master_support.status import StatusBoard, status_topics
from piwheels.master_support.task import Task, describe_error, tell_tasks
from piwheels.message_codec import ProtocolError
from piwheels.records.status import MasterStatus
from piwheels.transport import Socket, recv_frames
from piwheels.web.writer import write_atomic

log = logging.getLogger(__name__)
JOIN_TIMEOUT = 10.0
# How often the embedded PostgreSQL is looked at, and how many times it may be started again
# within DATABASE_RESTART_WINDOW seconds before the master gives up.
DATABASE_CHECK_INTERVAL = 2.0
DATABASE_RESTARTS = 5
DATABASE_RESTART_WINDOW = 600
TRIM_INTERVAL = 30.0  # how often memory freed after a burst is given back to the kernel
SWITCH_INTERVAL = 0.0005
MAX_COMMAND = 4096  # the control queue's messages are a word and a slave id
# The status queue's messages start with their kind, and a monitor subscribes to all or a kind.
STATUS_TOPICS = status_topics()


class PiwMaster:
    """Runs the master's tasks; :meth:`run` blocks until the master stops."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        follow_pypi: bool = True,
        database: EmbeddedPostgres | None = None,
    ) -> None:
        self.config = config
        self.follow_pypi = follow_pypi
        # The embedded PostgreSQL this master started (no --dsn): it is ours to keep running.
        self.database = database
        self.database_restarts: list[float] = []
        self.database_checked = 0.0
        self.trim_due = 0.0
        self.context: zmq.Context[Any] = zmq.Context()
        self.tasks: list[Task] = []
        self.failed: str | None = None
        self.stopping = threading.Event()
        self.started = datetime.now(UTC)
        self.paused = False

    def run(self) -> int:
        """Run until QUIT, a signal, or a task failure; return the exit status."""
        problem = local_queue_problem(self.config)
        if problem is not None:
            log.critical("%s", problem)
            return 1
        try:
            authenticator = self._admit_builders()
        except (KeyFileError, provenance.ProvenanceKeyError) as exc:
            log.critical("%s", exc)
            return 1
        sockets = self._open_sockets()
        # A task waiting for the interpreter lock waits up to the switch interval for a busy
        # one to let go, and a slave's request crosses several tasks (Slave Driver, Seraph,
        # an Oracle, the File Juggler): a shorter interval shortens the slowest replies.
        sys.setswitchinterval(SWITCH_INTERVAL)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stopping.set())
        try:
            self.tasks = self._create_tasks()
            for task in self.tasks:
                task.start()
            log.info("master running with %d tasks", len(self.tasks))
            self._publish_state()
            while not self.stopping.is_set():
                for zsock in dict(self.poller.poll(500)):
                    self.handlers[zsock]()
                self._supervise_database()
                if time.monotonic() >= self.trim_due:
                    self.trim_due = time.monotonic() + TRIM_INTERVAL
                    release_free_memory()
        finally:
            log.info("stopping")
            stuck = self._stop_tasks(self.control)
            for sock in sockets:
                sock.close()
            if authenticator is not None:
                authenticator.stop()
            if stuck:
                # terminating the context would block on their sockets; exiting frees them
                log.error("not waiting for %s", ", ".join(stuck))
            else:
                self.context.term()
                self._remove_socket_files()
        log.info("stopped")
        return 1 if self.failed else 0

    def _admit_builders(self) -> BuilderAuthenticator | None:
        """With builder keys, make the master's key pair on its first start and let only
        trusted builders connect to the builder queues (see builder_trust.py)."""
        config = self.config
        if config.key_dir is None:
            log.warning(
                "the builder queues %s and %s are open to anyone who can reach them (no keys)",
                config.slave_queue,
                config.file_queue,
            )
            return None
        trust = BuilderTrust(config.key_dir, make=True)
        log.info(
            "%s master key %s (public key %s, in %s): slaves need it (piw-slave --master-key)",
            "made the" if trust.made else "the",
            trust.pair.fingerprint,
            trust.public_key,
            config.key_dir,
        )
        self._publish_provenance_key(config.key_dir)
        authenticator = BuilderAuthenticator(self.context, trust)
        authenticator.start()
        for address in (config.insecure_slave_queue, config.insecure_file_queue):
            if address is not None:
                log.warning("%s is open to any builder, with no key (insecure)", address)
        return authenticator

    def _publish_provenance_key(self, key_dir: Path) -> None:
        """Make the key that signs each wheel's provenance (at the first start) and put its
        public half where piw-verify looks: OUTPUT/piwheels-provenance.pem."""
        key = provenance.signing_key(key_dir, make=True)
        public = provenance.public_key_pem(key.public_key())
        path = Path(self.config.output_path) / provenance.PUBLIC_KEY_FILE
        if not path.exists() or path.read_bytes() != public:
            write_atomic(path, public)
        log.info("provenance signed with %s", provenance.key_id(key.public_key()))

    def _open_sockets(self) -> list[Socket]:
        """Bind every queue the tasks and the outside world reach the main thread by."""
        config, ctx = self.config, self.context
        self.control = Socket(zmq.PUB, reversed(protocols.task_control), context=ctx)
        self.control.bind(config.task_control_queue)
        self.inbox = Socket(zmq.PULL, protocols.master_control, context=ctx)
        self.inbox.bind(config.master_control_queue)
        self.commands = Socket(
            zmq.PULL, protocols.master_commands, context=ctx, max_message_size=MAX_COMMAND
        )
        self.commands.bind(config.control_queue)
        self.status_in = Socket(zmq.PULL, reversed(protocols.status), context=ctx)
        self.status_in.bind(config.status_internal_queue)
        # Subscriptions are taken by hand, and only those a status message can match: libzmq
        # keeps each in a tree of a node per byte, which outlives its subscriber (one 4 MB
        # subscription cost ~200 MB for good; see status.status_topics).
        status_out = Socket(zmq.XPUB, protocols.status, context=ctx, max_message_size=1024)
        status_out.zsock.setsockopt(zmq.XPUB_MANUAL, 1)
        status_out.bind(config.status_queue)
        self.status_out = status_out
        self.board = StatusBoard(status_out)
        self.slave_commands = Socket(zmq.PUSH, reversed(protocols.slave_commands), context=ctx)
        self.slave_commands.zsock.setsockopt(zmq.SNDTIMEO, 1000)
        self.slave_commands.connect(config.slave_commands_queue)
        self.handlers = {
            self.inbox.zsock: self._handle_inbox,
            self.commands.zsock: self._handle_command,
            self.status_in.zsock: self._handle_status,
            status_out.zsock: self._handle_subscription,
        }
        self.poller = zmq.Poller()
        for zsock in self.handlers:
            self.poller.register(zsock, zmq.POLLIN)
        return [
            self.control,
            self.inbox,
            self.commands,
            self.status_in,
            status_out,
            self.slave_commands,
        ]

    def _stop_tasks(self, control: Socket) -> list[str]:
        """Stop the tasks in the reverse of their start order, so no task is left waiting on
        one already gone (the Oracles stop last); return the names of any that would not."""
        stuck = []
        for task in reversed(self.tasks):
            if task.ident is None:  # never started (another task failed to set up)
                task.close()
                continue
            tell_tasks(control, "QUIT", task.name)
            task.join(JOIN_TIMEOUT)
            if task.is_alive():
                log.error("%s did not stop within %ss", task.name, JOIN_TIMEOUT)
                stuck.append(task.name)
        return stuck

    def _create_tasks(self) -> list[Task]:
        config, ctx = self.config, self.context
        tasks: list[Task] = [Seraph(config, ctx)]
        tasks += [TheOracle(config, ctx, number=n) for n in range(config.oracles)]
        # the web tasks before their clients: each bind must exist before anyone sends to it,
        # and tasks stop in the reverse order (the Secretary saves its backlog via an Oracle)
        tasks += [TheScribe(config, ctx), TheSecretary(config, ctx), BigBrother(config, ctx)]
        tasks += [FileJuggler(config, ctx), MrChase(config, ctx), HitCounter(config, ctx)]
        tasks += [SlaveDriver(config, ctx), TheArchitect(config, ctx)]
        if self.follow_pypi:
            tasks.append(CloudGazer(config, ctx))
        return tasks

    def _handle_inbox(self) -> None:
        try:
            action, data = self.inbox.recv()
        except ProtocolError as exc:
            log.error("bad message to the master: %s", exc)
            return
        if action == "FAILED":
            self.failed = data.task
            log.critical("%s crashed; stopping the master:\n%s", data.task, data.reason)
        self.stopping.set()

    def _handle_status(self) -> None:
        try:
            action, data = self.status_in.recv()
        except ProtocolError as exc:
            log.error("bad status report: %s", exc)
            return
        self.board.publish(action, data)

    def _handle_subscription(self) -> None:
        """Subscribe a monitor to what it asks for, if a status message can match it; a
        subscription is a frame of 1 and the topic, an unsubscription one of 0 and the topic."""
        for frame in recv_frames(self.status_out.zsock):
            kind, topic = frame[:1], frame[1:]
            if topic not in STATUS_TOPICS:
                log.error(
                    "refused a subscription to the status queue that no message can match "
                    "(%d bytes)",
                    len(topic),
                )
            elif kind == b"\x01":
                self.status_out.zsock.setsockopt(zmq.SUBSCRIBE, topic)
            elif kind == b"\x00":
                self.status_out.zsock.setsockopt(zmq.UNSUBSCRIBE, topic)

    def _handle_command(self) -> None:
        try:
            action, data = self.commands.recv()
        except ProtocolError as exc:
            log.error("refused a command: %s", exc)
            return
        try:
            self._carry_out(action, data)
        except Exception as exc:  # a command must never stop the master, unless it says QUIT
            log.error("refused %s on the control queue: %s", action, describe_error(exc))

    def _carry_out(self, action: str, data: Any) -> None:
        log.info("%s requested on the control queue", action)
        if action == "QUIT":
            self.stopping.set()
        elif action == "HELLO":
            self.board.replay()
        elif action in ("PAUSE", "RESUME"):
            self.paused = action == "PAUSE"
            tell_tasks(self.control, action)
            self._publish_state()
        else:  # SLEEP, WAKE, KILL: one slave's or every slave's business
            try:
                self.slave_commands.send(action, data)
            except zmq.Again:
                log.error("the Slave Driver is not taking commands: %s dropped", action)

    def _remove_socket_files(self) -> None:
        """Remove the ipc:// socket files this master bound: left behind, they look like a
        master still running to the tools and the monitor."""
        config = self.config
        for address in local_addresses(config).values():
            if address.startswith("ipc://") and not address.startswith("ipc://@"):
                with contextlib.suppress(OSError):
                    Path(address.removeprefix("ipc://")).unlink(missing_ok=True)

    def _supervise_database(self) -> None:
        """Start the embedded PostgreSQL again if it died; stop the master, saying why, if it
        keeps dying. The tasks reconnect by themselves, and nothing committed is lost."""
        now = time.monotonic()
        if self.database is None or now - self.database_checked < DATABASE_CHECK_INTERVAL:
            return
        self.database_checked = now
        if self.database.is_running():
            return
        recent = [t for t in self.database_restarts if t > now - DATABASE_RESTART_WINDOW]
        if len(recent) >= DATABASE_RESTARTS:
            log.critical(
                "PostgreSQL in %s stopped %d times in %d minutes; stopping the master "
                "(its log: %s)",
                self.database.data_dir,
                len(recent),
                DATABASE_RESTART_WINDOW // 60,
                self.database.log_file,
            )
            self.failed = "PostgreSQL"
            self.stopping.set()
            return
        self.database_restarts = [*recent, now]
        log.error("PostgreSQL in %s is not running; starting it again", self.database.data_dir)
        try:
            self.database.start()
        except EmbeddedPostgresError as exc:  # tried again at the next check
            log.error("cannot start PostgreSQL again: %s", exc)

    def _publish_state(self) -> None:
        state = "paused" if self.paused else "running"
        self.board.publish("MASTER", MasterStatus(state, self.started, __version__))

    def stop(self) -> None:
        """Ask a running master to stop (safe to call from any thread)."""
        with Socket(zmq.PUSH, reversed(protocols.master_control), context=self.context) as sock:
            sock.connect(self.config.master_control_queue)
            sock.send("QUIT")
            # give the message a moment to leave before the socket closes with linger 0
            sock.zsock.setsockopt(zmq.LINGER, 1000)
