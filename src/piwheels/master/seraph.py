"""Seraph: the load balancer in front of the Oracles.

Clients send database requests to Seraph's front ROUTER; each Oracle announces itself on the
back ROUTER with READY and is handed one request at a time. Seraph never decodes a request (the
Oracle does), it only routes frames, so a slow query never blocks the other Oracles.

A slave waiting for its build to be recorded waits on the Oracles, while a page, the home
page's figures or a batch from PyPI can wait a while longer. Clients whose routing id starts
with :data:`URGENT` (the Slave Driver's) go first, and one Oracle is kept for them: the others
may all be busy with slow requests (the statistics take seconds at PyPI's scale) without any
slave waiting behind them.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import Task
from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.transport import recv_frames, send_frames

# what an Oracle says when it is free (protocols.seraph_workers)
READY = encode(reversed(protocols.seraph_workers), "READY")
URGENT = b"urgent:"


def urgent_routing_id() -> bytes:
    """A routing id for a client socket whose requests go first (unique per socket)."""
    return URGENT + secrets.token_hex(8).encode()


class Seraph(Task):
    name = "Seraph"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.front = self.context.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.bind(config.oracle_queue)
        self.back = self.context.socket(zmq.ROUTER)
        self.back.setsockopt(zmq.LINGER, 0)
        self.back.bind(config.oracle_workers_queue)
        self.workers: set[bytes] = set()  # every Oracle that has said READY
        self.idle_workers: deque[bytes] = deque()
        # requests with no free Oracle yet
        self.urgent: deque[list[bytes]] = deque()
        self.waiting: deque[list[bytes]] = deque()
        self.register_raw(self.front, self.handle_client)
        self.register_raw(self.back, self.handle_worker)

    def handle_client(self) -> None:
        client, empty, request = recv_frames(self.front)[:3]
        if empty != b"":
            self.log.error("dropping a request without an envelope")
            return
        queue = self.urgent if client.startswith(URGENT) else self.waiting
        queue.append([client, request])
        self._dispatch()

    def handle_worker(self) -> None:
        frames = recv_frames(self.back)
        worker = frames[0]
        if len(frames) == 3 and self._says_ready(frames[2]):
            self.workers.add(worker)
            self.idle_workers.append(worker)
        elif len(frames) == 5:
            # [worker, "", client, "", reply]: pass the reply on; the Oracle is free again
            send_frames(self.front, [frames[2], b"", frames[4]])
            self.idle_workers.append(worker)
        else:
            self.log.error("dropping a malformed reply from an Oracle")
        self._dispatch()

    def _says_ready(self, raw: bytes) -> bool:
        try:
            action, _ = decode(protocols.seraph_workers, raw)
        except ProtocolError as exc:
            self.log.error("dropping a malformed announcement from an Oracle: %s", exc)
            return False
        return action == "READY"

    def _dispatch(self) -> None:
        while self.urgent and self.idle_workers:
            self._hand_over(self.urgent.popleft())
        kept = 1 if len(self.workers) > 1 else 0  # for urgent requests yet to come
        while self.waiting and len(self.idle_workers) > kept:
            self._hand_over(self.waiting.popleft())

    def _hand_over(self, job: list[bytes]) -> None:
        client, request = job
        send_frames(self.back, [self.idle_workers.popleft(), b"", client, b"", request])

    def close(self) -> None:
        self.front.close(linger=0)
        self.back.close(linger=0)
        super().close()
