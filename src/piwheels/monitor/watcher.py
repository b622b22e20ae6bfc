"""The thread that listens to the master's status queue and tells the app what changed.

It owns the SUB socket (ZeroMQ sockets belong to one thread: once it starts, only it touches
the socket) and its own copy of the slave table, and reaches the UI only by posting
:mod:`piwheels.monitor.messages`. SLAVE and GONE are folded over a short window into one
:class:`~piwheels.monitor.messages.SlavesChanged` snapshot, so a burst of hundreds of updates
costs the UI one redraw.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import zmq
from textual.message import Message

from piwheels import protocols
from piwheels.message_codec import ProtocolError
from piwheels.monitor.messages import (
    BadMessage,
    BuildRecorded,
    CheckRecorded,
    Listening,
    MasterChanged,
    QueueChanged,
    SlaveJoined,
    SlaveLeft,
    SlavesChanged,
    StatsChanged,
)
from piwheels.records.status import BuildEvent, MasterStatus, SlaveStatus
from piwheels.transport import Socket

log = logging.getLogger(__name__)

# How long the socket is polled before the stop flag is looked at again: the monitor quits
# within this time.
POLL_MS = 200
# How long a burst is gathered before the slave table is posted: at most this many redraws of
# the table a second is 1/BATCH_SECONDS, and an update is never later than this on screen.
BATCH_SECONDS = 0.05
# The master replays its recent builds (50) with the rest of its state on every HELLO; this many
# remembered builds keeps a replay out of the log a second time.
BUILDS_REMEMBERED = 500


class StatusWatcher(threading.Thread):
    """Receives from *address* until :meth:`stop`; every result goes to *post*."""

    def __init__(
        self,
        address: str,
        post: Callable[[Message], object],
        *,
        since: datetime,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        super().__init__(name="Status Watcher", daemon=True)
        self.address = address
        self.post = post
        # Slaves first seen before this were already there when the monitor started: filling
        # them in is not news for the log.
        self.since = since
        self.stopping = threading.Event()
        # Made and connected here, so a bad address fails in the caller (piw-monitor's option
        # check); the thread that starts next takes the socket over and closes it.
        self.sock = Socket(zmq.SUB, reversed(protocols.status), context=context)
        try:
            self.sock.zsock.setsockopt(zmq.SUBSCRIBE, b"")
            self.sock.connect(address)
        except zmq.ZMQError:
            self.sock.close()
            raise
        self.master: MasterStatus | None = None
        self.slaves: dict[int, SlaveStatus] = {}
        self.builds_seen: set[BuildEvent] = set()
        self.builds_order: deque[BuildEvent] = deque()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        elif self.ident is None:
            self.sock.close()  # never started, so the socket is still the caller's

    def run(self) -> None:
        try:
            self.post(Listening())
            while not self.stopping.is_set():
                if self.sock.poll(POLL_MS):
                    self.receive_burst(self.sock)
        except zmq.ZMQError as exc:
            # The context terminated under us: nothing more will arrive.
            log.error("status queue %s: %s", self.address, exc)
            self.post(BadMessage(f"stopped listening on {self.address}: {exc}"))
        finally:
            self.sock.close()

    def receive_burst(self, sock: Socket) -> None:
        """Handle what is waiting, and whatever follows within BATCH_SECONDS, then post once."""
        deadline = time.monotonic() + BATCH_SECONDS
        slaves_changed = False
        while True:
            try:
                action, data = sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            except ProtocolError as exc:
                log.error("status queue: %s", exc)
                self.post(BadMessage(str(exc)))
            else:
                slaves_changed |= self.handle(action, data)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stopping.is_set() or not sock.poll(remaining * 1000):
                break
        if slaves_changed:
            self.post(SlavesChanged(dict(self.slaves)))

    def handle(self, action: str, data: Any) -> bool:
        """Post what one message means; return whether the slave table changed."""
        if action == "SLAVE":
            slave: SlaveStatus = data
            if slave.slave_id not in self.slaves and slave.first_seen >= self.since:
                self.post(SlaveJoined(slave))
            self.slaves[slave.slave_id] = slave
            return True
        if action == "GONE":
            gone = self.slaves.pop(data, None)
            if gone is not None:
                self.post(SlaveLeft(gone))
            return gone is not None
        if action == "BUILD":
            self.build(data)
        elif action == "CHECK":
            self.post(CheckRecorded(data))
        elif action == "QUEUE":
            self.post(QueueChanged(data))
        elif action == "STATS":
            self.post(StatsChanged(data))
        elif action == "MASTER":
            status: MasterStatus = data
            restarted = self.master is not None and status.started != self.master.started
            self.master = status
            self.post(MasterChanged(status, restarted))
            if restarted and self.slaves:
                # A new master knows none of the old one's slaves until they say HELLO again.
                self.slaves.clear()
                return True
        return False

    def build(self, event: BuildEvent) -> None:
        if event in self.builds_seen:
            return
        self.builds_seen.add(event)
        self.builds_order.append(event)
        if len(self.builds_order) > BUILDS_REMEMBERED:
            self.builds_seen.discard(self.builds_order.popleft())
        self.post(BuildRecorded(event))
