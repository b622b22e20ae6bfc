"""Seraph: the load balancer in front of the Oracles.

Clients send database requests to Seraph's front ROUTER; each Oracle announces itself on the
back ROUTER with READY and is handed one request at a time. Seraph never decodes a request (the
Oracle does), it only routes frames, so a slow query never blocks the other Oracles.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import zmq

from piwheels.master.config import MasterConfig
from piwheels.master.task import Task

READY = b"READY"


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
        self.idle_workers: deque[bytes] = deque()
        self.waiting: deque[list[bytes]] = deque()  # requests with no free Oracle yet
        self.register_raw(self.front, self.handle_client)
        self.register_raw(self.back, self.handle_worker)

    def handle_client(self) -> None:
        client, empty, request = self.front.recv_multipart()[:3]
        if empty != b"":
            self.log.error("dropping a request without an envelope")
            return
        self.waiting.append([client, request])
        self._dispatch()

    def handle_worker(self) -> None:
        frames = self.back.recv_multipart()
        worker = frames[0]
        if frames[2:] == [READY]:
            self.idle_workers.append(worker)
        elif len(frames) == 5:
            # [worker, "", client, "", reply]: pass the reply on; the Oracle is free again
            self.front.send_multipart([frames[2], b"", frames[4]])
            self.idle_workers.append(worker)
        else:
            self.log.error("dropping a malformed reply from an Oracle")
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting and self.idle_workers:
            client, request = self.waiting.popleft()
            self.back.send_multipart([self.idle_workers.popleft(), b"", client, b"", request])

    def close(self) -> None:
        self.front.close(linger=0)
        self.back.close(linger=0)
        super().close()
