"""Frees what a peer makes libzmq hold for a message it never ends (#13).

libzmq bounds each frame of a message (ZMQ_MAXMSGSIZE), not the message: it keeps every frame
of one until the last has come, and only then hands the message on. A peer speaking ZMTP by
hand can send frames marked "more" for ever, and the master's memory grows by each. libzmq says
nothing of which connection holds what, but it can end every connection of an endpoint, and
with them the messages they hold: unbinding an endpoint ends the connections accepted on it,
and binding it again lets peers back (ours reconnect by themselves and offer the master the
build they hold, see slave/agent.py).

So each task with builder queues checks the master's resident memory every second; past the
operator's bound (``--max-memory``) it ends the connections of its queues, one queue at a time,
until the memory is back under the bound. A well-behaved master stays far below it (a few
hundred MB at PyPI's scale), so only a peer holding a message open, or legitimate traffic far
beyond what a farm sees, ever trips it; either way what is lost is a message or a transfer that
its sender makes again.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import zmq

from piwheels.heap import release_free_memory
from piwheels.transport import Socket

# How often a task looks at the memory: a peer sending at 1 Gbit/s adds ~125 MB meanwhile.
GUARD_INTERVAL = 1.0
# How long ending a queue's connections is given before the memory is looked at again.
_SETTLE = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATM = Path("/proc/self/statm")


def resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    return int(_STATM.read_bytes().split()[1]) * _PAGE


class QueueGuard:
    """Ends every connection of *queues* (bound ROUTER sockets of one task) while the process
    holds more than *limit* bytes."""

    def __init__(self, log: logging.Logger, queues: list[Socket], limit: int) -> None:
        self.log = log
        self.limit = limit
        # the endpoints as bound (a wildcard address resolved), which is what unbind takes
        self.endpoints = [(q, q.zsock.get_string(zmq.LAST_ENDPOINT)) for q in queues]
        # What the memory must pass to act: the limit, or more when ending the queues'
        # connections did not bring it back under (what holds it is not theirs, and acting
        # again each second would only cut off every builder, each second).
        self.bar = limit
        try:
            resident_bytes()
        except OSError as exc:  # not Linux: nothing to read the memory from
            log.warning("the builder queues' memory bound is not kept: %s", exc)
            self.endpoints = []

    def check(self) -> None:
        if not self.endpoints:
            return
        held = resident_bytes()
        if held <= self.limit:
            self.bar = self.limit
        if held <= self.bar:
            return
        now = held
        for sock, endpoint in self.endpoints:
            self.drop_connections(sock, endpoint)
            release_free_memory()
            now = resident_bytes()
            if now <= self.limit:
                self.log.error(
                    "the master held %d MB, past its bound of %d MB (--max-memory): ended every "
                    "connection on %s, which held %d MB (a peer may have held a message open)",
                    held >> 20,
                    self.limit >> 20,
                    endpoint,
                    (held - now) >> 20,
                )
                return
        self.log.error(
            "the master holds %d MB, past its bound of %d MB (--max-memory), after ending every "
            "connection on %s: what holds it is not theirs",
            now >> 20,
            self.limit >> 20,
            " and ".join(endpoint for _, endpoint in self.endpoints),
        )
        self.bar = now + self.limit // 2

    def drop_connections(self, sock: Socket, endpoint: str) -> None:
        sock.zsock.unbind(endpoint)
        # The old listener closes on libzmq's I/O thread; its port may be taken for a moment.
        for _ in range(100):
            try:
                sock.zsock.bind(endpoint)
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE:
                    raise
                time.sleep(0.01)
            else:
                break
        else:
            sock.zsock.bind(endpoint)  # raises: the task ends, and with it the master
        # The connections end on libzmq's I/O thread, but their messages are freed only once
        # the socket has taken their pipes' ends, which it does when it is used.
        settled = time.monotonic() + _SETTLE
        while time.monotonic() < settled:
            sock.zsock.getsockopt(zmq.EVENTS)
            time.sleep(0.005)
