"""Requests a task makes to a request/reply service without waiting for the answer.

The Slave Driver answers hundreds of slaves from one thread. Asking the Oracles or the File
Juggler and waiting for each answer in turn made every slave wait behind the slowest commit or
fsync of any other: with 500 slaves a reply's p99 was seconds (see BENCHMARKS.md). A pool holds
several REQ sockets to one service, all polled by the task's own loop; a request takes a free
socket (or waits its turn), and its answer is handed to the callback given with it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA, Failure, Protocol
from piwheels.transport import Socket

if TYPE_CHECKING:
    from piwheels.master_support.task import Task

# What a callback receives: ("OK", the reply its request declares) or ("ERROR", a Failure of a
# kind the protocol declares).
Answer = Callable[[str, Any], None]


@dataclass
class _Request:
    action: str
    data: Any
    then: Answer | None
    deadline: float = 0.0


class RequestPool:
    """Up to *size* requests in flight to the service at *address*; the rest wait in order."""

    def __init__(
        self,
        task: Task,
        address: str,
        protocol: Protocol,
        *,
        size: int,
        timeout: float,
        name: str,
        routing_id: Callable[[], bytes] | None = None,
    ) -> None:
        self.task = task
        self.address = address
        self.protocol = protocol
        self.timeout = timeout
        self.name = name
        self.routing_id = routing_id
        self.log = logging.getLogger(f"{task.log.name}.{name.replace(' ', '_')}")
        self.free: list[Socket] = [self._connect() for _ in range(size)]
        self.in_flight: dict[Socket, _Request] = {}
        self.backlog: deque[_Request] = deque()
        task.every(1.0, self.expire)

    def _connect(self) -> Socket:
        sock = self.task.socket(zmq.REQ, self.protocol)
        if self.routing_id is not None:  # how the service tells this pool's requests apart
            sock.zsock.setsockopt(zmq.ROUTING_ID, self.routing_id())
        sock.connect(self.address)
        self.task.register(sock, lambda: self._answered(sock))
        return sock

    @property
    def busy(self) -> int:
        """Requests not yet answered (in flight or waiting for a socket)."""
        return len(self.in_flight) + len(self.backlog)

    def ask(self, action: str, data: Any = NO_DATA, then: Answer | None = None) -> None:
        """Send *action*; *then* gets the answer later, from the task's own loop."""
        request = _Request(action, data, then)
        if self.free:
            self._send(self.free.pop(), request)
        else:
            self.backlog.append(request)

    def _send(self, sock: Socket, request: _Request) -> None:
        try:
            sock.send(request.action, request.data)
        except ProtocolError as exc:  # our own mistake: the request is not sendable at all
            self.free.append(sock)
            self._deliver(request, "ERROR", Failure("malformed", str(exc)))
            return
        request.deadline = time.monotonic() + self.timeout
        self.in_flight[sock] = request

    def _answered(self, sock: Socket) -> None:
        request = self.in_flight.pop(sock)
        try:
            status, data = sock.recv()
        except ProtocolError as exc:
            result = Failure("malformed", f"malformed answer: {exc}")
        else:
            result = self.protocol.answer(request.action, status, data)
        if isinstance(result, Failure) and result.kind == "malformed":
            self.log.error("%s: %s", request.action, result)
        self._release(sock)
        self._deliver(request, "ERROR" if isinstance(result, Failure) else "OK", result)

    def _release(self, sock: Socket) -> None:
        if self.backlog:
            self._send(sock, self.backlog.popleft())
        else:
            self.free.append(sock)

    def _deliver(self, request: _Request, status: str, result: Any) -> None:
        if request.then is not None:
            request.then(status, result)

    def expire(self) -> None:
        """Fail requests that went unanswered for too long (a REQ socket that missed its
        answer is stuck, so it is replaced)."""
        now = time.monotonic()
        for sock, request in list(self.in_flight.items()):
            if request.deadline > now:
                continue
            del self.in_flight[sock]
            self.task.close_socket(sock)
            why = f"{request.action}: no answer from the {self.name} within {self.timeout:g}s"
            self.log.error("%s", why)
            self._release(self._connect())
            self._deliver(request, "ERROR", Failure("timeout", why))
